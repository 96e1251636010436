// spdlog set-up: text lines for people, JSON lines for log pipelines.
#pragma once

#include <string>

namespace baton::daemon {

// FORMAT is "text" or "json"; LEVEL a spdlog level name. Logs go to stderr.
void setup_logging(const std::string& format, const std::string& level);

}  // namespace baton::daemon
