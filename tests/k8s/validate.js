// Offline validation of Kubernetes manifests that use baton (tests/k8s/run.sh).
//
//   node validate.js --baton BIN --batond BIN --image IMAGE [--index README]
//                    [--expect-failure] FILE...
//
// For every YAML document of every FILE:
//  1. the schema of its apiVersion/kind (kubernetes-models, Kubernetes 1.33):
//     types, required fields, enums;
//  2. unknown (misspelt) fields, found by TypeScript against the same
//     package's types;
//  3. rules only the API server enforces (names, restart policies, volume
//     references, podFailurePolicy, selectors, ...);
//  4. baton's rules: one batond sidecar per pod (a native sidecar with a
//     `baton ping` startup probe, or --exit-when-idle), the baton image,
//     the socket directory mounted by every container that runs baton, and
//     every baton/batond command and flag real: learned from the --help of
//     the binaries given, so the manifests follow the code.
//
// Prints one line per problem, "FILE: doc N (Kind/name): PATH: message", and
// exits 1 if there was any. With --expect-failure, every "# expect: TEXT"
// comment of the FILES must match a reported problem, and something must be
// reported; then it exits 0 (the validator can fail) or 1 (it missed some).
"use strict";

const fs = require("fs");
const path = require("path");
const { execFileSync } = require("child_process");
const YAML = require("yaml");
const ts = require("typescript");

// ------------------------------------------------------------ arguments

function parse_args(argv) {
  const args = { files: [], expect_failure: false };
  for (let i = 0; i < argv.length; ++i) {
    const a = argv[i];
    if (a === "--baton") args.baton = argv[++i];
    else if (a === "--batond") args.batond = argv[++i];
    else if (a === "--image") args.image = argv[++i];
    else if (a === "--index") args.index = argv[++i];
    else if (a === "--expect-failure") args.expect_failure = true;
    else if (a.startsWith("--")) throw new Error(`unknown option ${a}`);
    else args.files.push(a);
  }
  if (!args.baton || !args.batond || !args.image || args.files.length === 0)
    throw new Error("usage: validate.js --baton BIN --batond BIN --image IMAGE FILE...");
  return args;
}

// ------------------------------------------ what the binaries really take

// Options from a --help text: " -w, --timeout <secs>   ..." lines.
function parse_help_options(text) {
  const options = new Map();  // "--timeout" / "-w" -> { takes_value }
  for (const line of text.split("\n")) {
    const m = /^\s{1,8}(?:(-[A-Za-z]),\s+)?(--[a-z][a-z0-9-]*)(?:\s+(<[^>]+>|[A-Z][A-Z_]*))?/.exec(line);
    if (!m) continue;
    const takes_value = m[3] !== undefined;
    options.set(m[2], { takes_value });
    if (m[1]) options.set(m[1], { takes_value });
  }
  return options;
}

// The operands of a command from its usage line, e.g.
// " baton publish [options] <file>|- <dest>" or
// " baton run [options] --lock <name> [--] <command> [<argument>...]".
function parse_usage(line) {
  const words = line.trim().split(/\s+/).slice(2);
  const usage = { required: 0, optional: 0, command: null };  // command: "required" | "optional"
  let depth = 0;
  for (let i = 0; i < words.length; ++i) {
    const w = words[i];
    const opens = (w.match(/\[/g) || []).length;
    const closes = (w.match(/\]/g) || []).length;
    const bare = w.replace(/[[\]]/g, "");
    const optional = depth + opens > 0;
    if (bare === "options" || bare === "") {
      // "[options]"
    } else if (bare === "--") {
      // separator before CMD
    } else if (bare.startsWith("-")) {
      if (i + 1 < words.length && /^<[^>]+>$/.test(words[i + 1])) ++i;  // its value
    } else if (bare.startsWith("<command>")) {
      usage.command = optional ? "optional" : "required";
      depth += opens - closes;
      // The rest ("[<argument>...]") belongs to the command.
      for (let k = i + 1; k < words.length; ++k)
        depth += (words[k].match(/\[/g) || []).length - (words[k].match(/\]/g) || []).length;
      break;
    } else if (bare.startsWith("<")) {
      if (optional) ++usage.optional;
      else ++usage.required;
    }
    depth += opens - closes;
  }
  return usage;
}

function help_text(binary, args) {
  return execFileSync(binary, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

function learn_baton(binary) {
  const main = help_text(binary, ["--help"]);
  const cli = { global: parse_help_options(main), commands: new Map() };
  const section = main.split(/\nCommands:\n/)[1];
  if (!section) throw new Error(`${binary} --help lists no commands`);
  for (const line of section.split("\n")) {
    if (!/^ \S/.test(line)) break;
    const name = line.trim().split(/\s+/)[0];
    const text = help_text(binary, [name, "--help"]);
    const usage_line = text.split("\n").find((l) => l.startsWith(` baton ${name}`));
    if (!usage_line) throw new Error(`baton ${name} --help has no usage line`);
    cli.commands.set(name, { options: parse_help_options(text), usage: parse_usage(usage_line) });
  }
  return cli;
}

function learn_batond(binary) {
  const options = parse_help_options(help_text(binary, ["--help"]));
  const env = new Set(["POD_NAME", "NODE_NAME"]);  // fallbacks it reads too
  for (const name of options.keys())
    if (name.startsWith("--") && name !== "--help" && name !== "--version")
      env.add("BATON_" + name.slice(2).toUpperCase().replace(/-/g, "_"));
  return { options, env };
}

// ---------------------------------------------------------------- report

class Report {
  constructor() {
    this.problems = [];
  }
  add(where, at, message) {
    this.problems.push(`${where}: ${at ? at + ": " : ""}${message}`);
  }
}

// ------------------------------------------------ 1. schema (kubernetes-models)

function model_module(api_version, kind) {
  const group = api_version.includes("/") ? api_version : `v1`;
  if (!/^[a-z0-9.]*\/?v[0-9a-z]+$/.test(api_version) || !/^[A-Z][A-Za-z]+$/.test(kind)) return null;
  return `kubernetes-models/${group}/${kind}`;
}

function check_schema(doc, where, report) {
  const module = model_module(String(doc.apiVersion || ""), String(doc.kind || ""));
  let Model = null;
  if (module) {
    try {
      Model = require(module)[doc.kind];
    } catch (e) {
      Model = null;
    }
  }
  if (!Model) {
    report.add(where, "", `unknown apiVersion/kind ${doc.apiVersion}/${doc.kind}`);
    return null;
  }
  try {
    new Model(doc).validate();
  } catch (e) {
    if (!e.errors) throw e;
    for (const error of e.errors) {
      let message = error.message;
      if (error.params && error.params.allowedValues)
        message += ` (${error.params.allowedValues.join(", ")})`;
      if (error.params && error.params.additionalProperty)
        message += ` (${error.params.additionalProperty})`;
      report.add(where, error.instancePath || "/", message);
    }
  }
  return module;
}

// ---------------------------------------- 2. unknown fields (TypeScript)

// Every object literal is checked against the type it is assigned to; a
// property that type does not have is a misspelt or misplaced field. Types
// with an index signature (labels, annotations, resources) take any key.
function check_unknown_fields(entries, report) {
  if (entries.length === 0) return;
  // A virtual file beside the node_modules that holds kubernetes-models, so
  // that TypeScript resolves its imports there (the cache, not this folder).
  const modules = path.dirname(path.dirname(require.resolve("kubernetes-models/package.json")));
  const file = path.join(path.dirname(modules), "__manifests__.ts");
  let source = "";
  entries.forEach((entry, i) => {
    source += `import type { I${entry.kind} as T${i} } from "${entry.module}";\n`;
    source += `const d${i}: T${i} = ${JSON.stringify(entry.doc)};\n`;
  });
  const options = {
    noEmit: true, strict: true, skipLibCheck: true, types: [],
    module: ts.ModuleKind.CommonJS, moduleResolution: ts.ModuleResolutionKind.Node10,
    target: ts.ScriptTarget.ES2020,
  };
  const host = ts.createCompilerHost(options);
  const read = host.readFile.bind(host);
  const exists = host.fileExists.bind(host);
  host.readFile = (f) => (path.resolve(f) === file ? source : read(f));
  host.fileExists = (f) => path.resolve(f) === file || exists(f);
  const program = ts.createProgram([file], options, host);
  const checker = program.getTypeChecker();
  const sf = program.getSourceFile(file);
  for (const d of program.getSyntacticDiagnostics(sf))
    throw new Error(`internal: generated TypeScript: ${ts.flattenDiagnosticMessageText(d.messageText, " ")}`);
  for (const d of program.getSemanticDiagnostics(sf)) {
    if (d.code === 2307 || d.code === 2305 || d.code === 2614)  // missing module or export
      throw new Error(`internal: ${ts.flattenDiagnosticMessageText(d.messageText, " ")}`);
  }

  const path_of = (node) => {
    const parts = [];
    let n = node;
    while (n && !ts.isVariableDeclaration(n)) {
      const parent = n.parent;
      if (ts.isPropertyAssignment(parent) && parent.initializer === n)
        parts.unshift(JSON.parse(parent.name.getText(sf)));
      else if (ts.isArrayLiteralExpression(parent)) parts.unshift(parent.elements.indexOf(n));
      n = parent;
    }
    return { index: Number(n.name.getText(sf).slice(1)), parts };
  };
  const visit = (node) => {
    if (ts.isObjectLiteralExpression(node)) {
      let type = checker.getContextualType(node);
      if (type) {
        type = checker.getApparentType(checker.getNonNullableType(type));
        const open = checker.getIndexInfosOfType(type).length > 0 ||
                     (type.flags & (ts.TypeFlags.Any | ts.TypeFlags.Unknown)) !== 0;
        if (!open) {
          for (const property of node.properties) {
            const name = JSON.parse(property.name.getText(sf));
            if (checker.getPropertyOfType(type, name)) continue;
            const { index, parts } = path_of(node);
            report.add(entries[index].where, "/" + [...parts, name].join("/"),
                       `unknown field "${name}" (not in ${checker.typeToString(type)})`);
          }
        }
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
}

// ------------------------------------------------ 3. API server rules

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const ENV_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;
const FIELD_PATHS = new Set(["metadata.name", "metadata.namespace", "metadata.uid",
  "spec.nodeName", "spec.serviceAccountName", "status.hostIP", "status.hostIPs",
  "status.podIP", "status.podIPs"]);

// The pod templates of a workload, with the JSON path to each.
function pod_templates(doc) {
  switch (doc.kind) {
    case "Pod": return [{ at: "/spec", spec: doc.spec || {}, labels: (doc.metadata || {}).labels }];
    case "Job":
    case "Deployment":
    case "StatefulSet":
    case "DaemonSet":
    case "ReplicaSet": {
      const t = (doc.spec || {}).template || {};
      return [{ at: "/spec/template/spec", spec: t.spec || {}, labels: (t.metadata || {}).labels }];
    }
    case "CronJob": {
      const t = (((doc.spec || {}).jobTemplate || {}).spec || {}).template || {};
      return [{ at: "/spec/jobTemplate/spec/template/spec", spec: t.spec || {},
                labels: (t.metadata || {}).labels }];
    }
    default: return [];
  }
}

function job_spec(doc) {
  if (doc.kind === "Job") return { at: "/spec", spec: doc.spec || {} };
  if (doc.kind === "CronJob")
    return { at: "/spec/jobTemplate/spec", spec: ((doc.spec || {}).jobTemplate || {}).spec || {} };
  return null;
}

function all_containers(spec) {
  const list = [];
  (spec.initContainers || []).forEach((c, i) => list.push({ c, init: true, at: `initContainers/${i}` }));
  (spec.containers || []).forEach((c, i) => list.push({ c, init: false, at: `containers/${i}` }));
  return list;
}

function check_api_rules(doc, where, report) {
  const meta = doc.metadata || {};
  const name = String(meta.name || "");
  if (!DNS1123_SUBDOMAIN.test(name) || name.length > 253)
    report.add(where, "/metadata/name", `"${name}" is not a DNS-1123 subdomain`);
  if (doc.kind === "CronJob" && name.length > 52)
    report.add(where, "/metadata/name", `a CronJob name has at most 52 characters`);
  if (doc.kind === "Service" && !DNS1035_LABEL.test(name))
    report.add(where, "/metadata/name", `"${name}" is not a DNS-1035 label`);
  if (doc.kind === "CronJob") {
    const schedule = String((doc.spec || {}).schedule || "");
    if (!schedule.startsWith("@") && schedule.trim().split(/\s+/).length !== 5)
      report.add(where, "/spec/schedule", `"${schedule}" is not a five-field cron schedule`);
  }
  if (doc.kind === "Deployment" || doc.kind === "StatefulSet" || doc.kind === "DaemonSet") {
    const wanted = (((doc.spec || {}).selector || {}).matchLabels) || {};
    const have = ((((doc.spec || {}).template || {}).metadata || {}).labels) || {};
    for (const [k, v] of Object.entries(wanted))
      if (have[k] !== v)
        report.add(where, "/spec/selector/matchLabels", `selector ${k}=${v} does not match the template's labels`);
  }

  for (const { at, spec } of pod_templates(doc)) {
    const volumes = new Map();
    (spec.volumes || []).forEach((v, i) => {
      if (!DNS1123_LABEL.test(String(v.name || "")))
        report.add(where, `${at}/volumes/${i}/name`, `"${v.name}" is not a DNS-1123 label`);
      if (volumes.has(v.name)) report.add(where, `${at}/volumes/${i}/name`, `volume "${v.name}" declared twice`);
      volumes.set(v.name, v);
    });
    const names = new Set();
    for (const { c, init, at: cat } of all_containers(spec)) {
      const cname = String(c.name || "");
      if (!DNS1123_LABEL.test(cname)) report.add(where, `${at}/${cat}/name`, `"${cname}" is not a DNS-1123 label`);
      if (names.has(cname)) report.add(where, `${at}/${cat}/name`, `container name "${cname}" used twice`);
      names.add(cname);
      if (c.restartPolicy !== undefined && (!init || c.restartPolicy !== "Always"))
        report.add(where, `${at}/${cat}/restartPolicy`,
                   init ? `an init container's restartPolicy can only be "Always"`
                        : `only init containers may set restartPolicy`);
      if (init && c.restartPolicy !== "Always" && (c.startupProbe || c.readinessProbe || c.livenessProbe))
        report.add(where, `${at}/${cat}`, `an init container that is not a sidecar cannot have probes`);
      (c.volumeMounts || []).forEach((m, i) => {
        if (!volumes.has(m.name))
          report.add(where, `${at}/${cat}/volumeMounts/${i}/name`, `no volume named "${m.name}" in the pod`);
      });
      (c.env || []).forEach((e, i) => {
        if (!ENV_NAME.test(String(e.name || "")))
          report.add(where, `${at}/${cat}/env/${i}/name`, `"${e.name}" is not a valid variable name`);
        const field = e.valueFrom && e.valueFrom.fieldRef && e.valueFrom.fieldRef.fieldPath;
        if (field && !FIELD_PATHS.has(field) && !/^metadata\.(labels|annotations)\['[^']+'\]$/.test(field))
          report.add(where, `${at}/${cat}/env/${i}/valueFrom/fieldRef/fieldPath`,
                     `"${field}" is not a field the downward API offers`);
      });
    }
    const job = job_spec(doc);
    if (job) {
      if (spec.restartPolicy !== "Never" && spec.restartPolicy !== "OnFailure")
        report.add(where, `${at}/restartPolicy`, `a Job's pods need restartPolicy Never or OnFailure`);
      const policy = job.spec.podFailurePolicy;
      if (policy) {
        if (spec.restartPolicy !== "Never")
          report.add(where, `${at}/restartPolicy`, `podFailurePolicy needs restartPolicy Never`);
        (policy.rules || []).forEach((rule, i) => {
          const codes = rule.onExitCodes;
          if (!codes) return;
          const rat = `${job.at}/podFailurePolicy/rules/${i}/onExitCodes`;
          if (codes.containerName !== undefined && !names.has(codes.containerName))
            report.add(where, `${rat}/containerName`, `no container named "${codes.containerName}"`);
          const values = codes.values || [];
          for (let k = 1; k < values.length; ++k)
            if (!(values[k] > values[k - 1]))
              report.add(where, `${rat}/values`, `values must be unique and in increasing order`);
          if (codes.operator === "In" && values.includes(0))
            report.add(where, `${rat}/values`, `0 is not allowed with operator In`);
        });
      }
    } else if (doc.kind !== "Pod" && spec.restartPolicy !== undefined && spec.restartPolicy !== "Always") {
      report.add(where, `${at}/restartPolicy`, `a ${doc.kind}'s pods need restartPolicy Always`);
    }
  }
}

// ---------------------------------------------- 4. baton's own rules

// Shell words and command boundaries, enough for the scripts in manifests:
// quotes, backslashes, comments, $(...), and the operators ; & | && || ( ).
// Returns commands as arrays of words (quotes removed); nested $(...) come
// out as commands of their own.
function shell_commands(script) {
  const commands = [];
  let words = [];
  let word = null;
  let redirect = false;  // the next word is a redirection's target: drop it
  const end_word = () => {
    if (word !== null && !redirect) words.push(word);
    if (word !== null) redirect = false;
    word = null;
  };
  const end_command = () => {
    end_word();
    redirect = false;
    if (words.length) commands.push(words);
    words = [];
  };
  for (let i = 0; i < script.length; ++i) {
    const ch = script[i];
    if (ch === "\\" && script[i + 1] === "\n") { ++i; continue; }
    if (ch === "\\") { word = (word || "") + (script[i + 1] || ""); ++i; continue; }
    if (ch === "'") {
      const close = script.indexOf("'", i + 1);
      word = (word || "") + script.slice(i + 1, close < 0 ? undefined : close);
      i = close < 0 ? script.length : close;
      continue;
    }
    if (ch === '"') {
      let j = i + 1;
      let text = "";
      for (; j < script.length && script[j] !== '"'; ++j) {
        if (script[j] === "\\" && j + 1 < script.length) { text += script[++j]; continue; }
        text += script[j];
      }
      word = (word || "") + text;
      i = j;
      continue;
    }
    if (ch === "#" && word === null) {
      const nl = script.indexOf("\n", i);
      i = nl < 0 ? script.length : nl - 1;
      continue;
    }
    if (ch === "$" && script[i + 1] === "(") {
      // $(( arithmetic )) stays a word; $( command ) splits.
      if (script[i + 2] === "(") {
        const close = script.indexOf("))", i);
        word = (word || "") + script.slice(i, close < 0 ? undefined : close + 2);
        i = close < 0 ? script.length : close + 1;
        continue;
      }
      word = (word || "") + "$CMD";
      end_command();
      ++i;
      continue;
    }
    if (ch === ">" || ch === "<") {
      // A redirection: "2>/dev/null", "> file", ">> file", "2>&1", "< in".
      if (word !== null && !/^[0-9]+$/.test(word)) end_word();
      word = null;
      while (script[i + 1] === ">" || script[i + 1] === "<" || script[i + 1] === "&" || script[i + 1] === "|") ++i;
      redirect = true;
      continue;
    }
    if (" \t".includes(ch)) { end_word(); continue; }
    if ("\n;&|()".includes(ch)) { end_command(); continue; }
    word = (word || "") + ch;
  }
  end_command();
  return commands;
}

const SHELL_WORDS = new Set(["if", "then", "else", "elif", "fi", "do", "done", "while",
  "until", "for", "case", "esac", "!", "{", "}", "exec", "time", "command"]);

// The baton invocations in ARGV (a container's command + args), following
// `sh -c SCRIPT` and the CMD of `baton run` / `baton claim`.
function find_invocations(argv, cli, found, depth = 0) {
  if (depth > 8 || argv.length === 0) return;
  let i = 0;
  while (i < argv.length && (SHELL_WORDS.has(argv[i]) || /^[A-Za-z_][A-Za-z0-9_]*=/.test(argv[i]))) ++i;
  const words = argv.slice(i);
  if (words.length === 0) return;
  const program = path.basename(words[0]);
  if (["sh", "bash", "dash", "ash"].includes(program)) {
    const c = words.indexOf("-c");
    if (c >= 0 && c + 1 < words.length)
      for (const command of shell_commands(words[c + 1])) find_invocations(command, cli, found, depth + 1);
    return;
  }
  if (program === "baton") {
    found.push(words);
    const cmd = baton_cmd_part(words, cli);
    if (cmd) find_invocations(cmd, cli, found, depth + 1);
  } else if (program === "batond") {
    found.push(words);
  }
}

// Checks one `baton ...` argv against what the binary accepts. Returns
// problems as strings.
function check_baton_argv(words, cli) {
  const problems = [];
  let i = 1;
  for (; i < words.length && words[i].startsWith("-"); ++i) {
    const [flag] = words[i].split("=");
    const spec = cli.global.get(flag);
    if (!spec) { problems.push(`baton: unknown option ${flag}`); return problems; }
    if (spec.takes_value && !words[i].includes("=")) ++i;
  }
  const name = words[i];
  const command = cli.commands.get(name);
  if (!command) {
    problems.push(`baton: ${name === undefined ? "no command" : `unknown command "${name}"`}` +
                  ` (known: ${[...cli.commands.keys()].join(", ")})`);
    return problems;
  }
  const { options, usage } = command;
  const operands = [];
  let cmd = null;
  for (++i; i < words.length; ++i) {
    const w = words[i];
    if (w === "--") { cmd = words.slice(i + 1); break; }
    if (w.startsWith("-") && w !== "-") {
      if (w.startsWith("--")) {
        const [flag] = w.split("=");
        const spec = options.get(flag);
        if (!spec) { problems.push(`baton ${name}: unknown option ${flag}`); continue; }
        if (spec.takes_value && !w.includes("=")) {
          if (i + 1 >= words.length) problems.push(`baton ${name}: ${flag} needs a value`);
          ++i;
        }
      } else {
        for (let k = 1; k < w.length; ++k) {
          const spec = options.get("-" + w[k]);
          if (!spec) { problems.push(`baton ${name}: unknown option -${w[k]}`); break; }
          if (spec.takes_value) {
            if (k + 1 === w.length) {
              if (i + 1 >= words.length) problems.push(`baton ${name}: -${w[k]} needs a value`);
              ++i;
            }
            break;
          }
        }
      }
      continue;
    }
    if (operands.length < usage.required + usage.optional) { operands.push(w); continue; }
    if (usage.command) { cmd = words.slice(i); break; }
    problems.push(`baton ${name}: unexpected argument "${w}"`);
    break;
  }
  if (operands.length < usage.required)
    problems.push(`baton ${name}: needs ${usage.required} operand(s), got ${operands.length}`);
  if (usage.command === "required" && (!cmd || cmd.length === 0))
    problems.push(`baton ${name}: no command to run`);
  if (usage.command && cmd !== null && cmd.length === 0)
    problems.push(`baton ${name}: no command after "--"`);
  if (!usage.command && cmd !== null && cmd.length > 0)
    problems.push(`baton ${name}: takes no command after --`);
  if (name === "run" && !words.some((w) => w === "--lock" || w.startsWith("--lock=")))
    problems.push(`baton run: no --lock`);
  return problems;
}

function baton_cmd_part(words, cli) {
  // The CMD of run/claim, for recursion; parsing errors are reported elsewhere.
  let i = 1;
  for (; i < words.length && words[i].startsWith("-"); ++i) {
    const spec = cli.global.get(words[i].split("=")[0]);
    if (spec && spec.takes_value && !words[i].includes("=")) ++i;
  }
  const command = cli.commands.get(words[i]);
  if (!command || !command.usage.command) return null;
  let operands = 0;
  for (++i; i < words.length; ++i) {
    const w = words[i];
    if (w === "--") return words.slice(i + 1);
    if (w.startsWith("--")) {
      const spec = command.options.get(w.split("=")[0]);
      if (spec && spec.takes_value && !w.includes("=")) ++i;
      continue;
    }
    if (w.startsWith("-") && w !== "-") {
      const spec = command.options.get(w.slice(0, 2));
      if (spec && spec.takes_value && w.length === 2) ++i;
      continue;
    }
    if (operands < command.usage.required + command.usage.optional) { ++operands; continue; }
    return words.slice(i);
  }
  return null;
}

function check_batond_argv(words, batond) {
  const problems = [];
  for (let i = 1; i < words.length; ++i) {
    const w = words[i];
    if (!w.startsWith("-")) { problems.push(`batond: unexpected argument "${w}"`); continue; }
    const [flag] = w.split("=");
    const spec = batond.options.get(flag);
    if (!spec) { problems.push(`batond: unknown option ${flag}`); continue; }
    if (spec.takes_value && !w.includes("=")) ++i;
  }
  return problems;
}

function env_value(container, name) {
  const e = (container.env || []).find((x) => x.name === name);
  return e ? e : undefined;
}

function argv_of(container) {
  return [...(container.command || []), ...(container.args || [])].map(String);
}

// Where a container keeps a path: the mount that holds it, if any.
function mount_for(container, file) {
  let best = null;
  for (const m of container.volumeMounts || []) {
    const dir = m.mountPath.replace(/\/+$/, "");
    if ((file === dir || file.startsWith(dir + "/")) && (!best || dir.length > best.mountPath.length)) best = m;
  }
  return best;
}

function check_baton_pods(doc, where, args, cli, batond, report) {
  for (const { at, spec } of pod_templates(doc)) {
    const containers = all_containers(spec);
    const volumes = new Map((spec.volumes || []).map((v) => [v.name, v]));
    const is_job = job_spec(doc) !== null;

    // Images: anything named like baton must be the one image.
    for (const { c, at: cat } of containers)
      if (/(^|\/)baton[:@]/.test(String(c.image || "")) && c.image !== args.image)
        report.add(where, `${at}/${cat}/image`, `"${c.image}" is not the baton image ${args.image}`);

    // The sidecar: the image's entrypoint (batond), or an explicit batond.
    const sidecars = containers.filter(({ c }) => {
      const argv = argv_of(c);
      if (c.image !== args.image) return argv.length > 0 && path.basename(argv[0]) === "batond";
      return (c.command === undefined && !(c.args || []).length) ||
             (argv.length > 0 && path.basename(argv[0]) === "batond") ||
             (c.command === undefined && String((c.args || [])[0] || "").startsWith("-"));
    });
    const users = [];
    for (const { c, at: cat } of containers) {
      const found = [];
      find_invocations(argv_of(c), cli, found);
      const probe = c.startupProbe && c.startupProbe.exec ? c.startupProbe.exec.command || [] : [];
      if (probe.length) find_invocations(probe.map(String), cli, found);
      for (const words of found) {
        const problems = path.basename(words[0]) === "batond"
          ? check_batond_argv(words, batond)
          : check_baton_argv(words, cli);
        for (const p of problems) report.add(where, `${at}/${cat}`, p);
      }
      if (found.some((w) => path.basename(w[0]) === "baton")) users.push({ c, at: cat, found });
    }
    if (users.length === 0 && sidecars.length === 0) continue;  // not a baton pod
    if (sidecars.length !== 1) {
      report.add(where, at, `a pod that uses baton needs exactly one batond sidecar, found ${sidecars.length}`);
      continue;
    }
    const side = sidecars[0];
    const sc = side.c;
    const sargv = argv_of(sc);
    const flag_value = (flag, env) => {
      for (let i = 0; i < sargv.length; ++i) {
        if (sargv[i] === flag) return sargv[i + 1];
        if (sargv[i].startsWith(flag + "=")) return sargv[i].slice(flag.length + 1);
      }
      const e = env_value(sc, env);
      return e ? e.value : undefined;
    };
    for (const [i, e] of (sc.env || []).entries())
      if (e.name.startsWith("BATON_") && !batond.env.has(e.name))
        report.add(where, `${at}/${side.at}/env/${i}/name`, `${e.name} is not a batond setting`);

    const exit_when_idle = sargv.includes("--exit-when-idle") ||
      ["", "0", "false", "no"].indexOf(String((env_value(sc, "BATON_EXIT_WHEN_IDLE") || { value: "" }).value)) < 0;
    if (side.init) {
      if (sc.restartPolicy !== "Always")
        report.add(where, `${at}/${side.at}`, `batond as an init container must be a native sidecar (restartPolicy: Always)`);
      const probe = sc.startupProbe && sc.startupProbe.exec ? (sc.startupProbe.exec.command || []).map(String) : [];
      if (!(probe.length >= 2 && path.basename(probe[0]) === "baton" && probe[1] === "ping"))
        report.add(where, `${at}/${side.at}/startupProbe`, `the sidecar needs a startupProbe running "baton ping", so the job starts once it answers`);
    } else if (is_job && !exit_when_idle) {
      report.add(where, `${at}/${side.at}`, `batond as a regular container of a Job needs --exit-when-idle, or the Job never completes`);
    }

    const root = flag_value("--root", "BATON_ROOT") || flag_value("-r", "BATON_ROOT");
    if (!root) report.add(where, `${at}/${side.at}`, `batond has no --root (or BATON_ROOT)`);
    else {
      const m = mount_for(sc, root);
      const v = m && volumes.get(m.name);
      if (!v) report.add(where, `${at}/${side.at}/volumeMounts`, `the root ${root} is not on a mounted volume`);
      else if (m.readOnly) report.add(where, `${at}/${side.at}/volumeMounts`, `the root ${root} is mounted read-only`);
      else if (!v.persistentVolumeClaim && !v.nfs && !v.cephfs && !v.csi)
        report.add(where, `${at}/${side.at}/volumeMounts`, `the root ${root} is on volume "${v.name}", not a shared (RWX) volume`);
    }
    const socket = flag_value("--socket", "BATON_SOCKET") || flag_value("-s", "BATON_SOCKET") || "/run/baton/baton.sock";
    const socket_mount = mount_for(sc, path.dirname(socket));
    const socket_volume = socket_mount && volumes.get(socket_mount.name);
    if (!socket_volume || !socket_volume.emptyDir) {
      report.add(where, `${at}/${side.at}/volumeMounts`, `the socket directory ${path.dirname(socket)} must be an emptyDir mounted in the sidecar`);
      continue;
    }

    for (const { c, at: cat, found } of users) {
      if (c === sc) continue;
      const e = env_value(c, "BATON_SOCKET");
      const path_here = e && e.value ? e.value : "/run/baton/baton.sock";
      const m = mount_for(c, path.dirname(path_here));
      if (!m || m.name !== socket_mount.name)
        report.add(where, `${at}/${cat}/volumeMounts`,
                   `runs baton but does not mount the socket directory (volume "${socket_mount.name}") at ${path.dirname(path_here)}`);
      // The baton binary: from the image, or copied by an init container of the image.
      for (const words of found) {
        if (path.basename(words[0]) !== "baton") continue;
        if (c.image === args.image && (words[0] === "baton" || words[0] === "/usr/local/bin/baton")) continue;
        const bm = words[0].startsWith("/") ? mount_for(c, words[0]) : null;
        const copier = bm && containers.find(({ c: o, init }) => init && o.image === args.image && o !== sc &&
          (o.volumeMounts || []).some((om) => om.name === bm.name) && argv_of(o).join(" ").includes("/usr/local/bin/baton"));
        if (!copier)
          report.add(where, `${at}/${cat}`, `runs ${words[0]} but neither uses the baton image nor gets the binary from an init container of it`);
        break;
      }
    }
  }
}

// ------------------------------------------------------------------ main

function main() {
  const args = parse_args(process.argv.slice(2));
  const cli = learn_baton(args.baton);
  const batond = learn_batond(args.batond);
  const report = new Report();
  const entries = [];
  const expectations = [];

  for (const file of args.files) {
    const text = fs.readFileSync(file, "utf8");
    const shown = path.relative(process.cwd(), file);
    for (const m of text.matchAll(/^#\s*expect:\s*(.+?)\s*$/gm)) expectations.push({ file: shown, text: m[1] });
    const docs = YAML.parseAllDocuments(text, { prettyErrors: true });
    docs.forEach((d, n) => {
      const base = `${shown}: doc ${n + 1}`;
      for (const e of d.errors) report.add(base, "", `YAML: ${e.message.split("\n")[0]}`);
      if (d.errors.length) return;
      const doc = d.toJS();
      if (doc === null || doc === undefined) return;
      if (typeof doc !== "object" || Array.isArray(doc)) {
        report.add(base, "", "not a Kubernetes object");
        return;
      }
      const where = `${base} (${doc.kind}/${(doc.metadata || {}).name})`;
      const module = check_schema(doc, where, report);
      if (module) entries.push({ doc, kind: doc.kind, module, where });
      check_api_rules(doc, where, report);
      check_baton_pods(doc, where, args, cli, batond, report);
    });
  }
  check_unknown_fields(entries, report);

  if (args.index) {
    const index = fs.readFileSync(args.index, "utf8");
    for (const file of args.files)
      if (!index.includes(path.basename(file)))
        report.add(path.relative(process.cwd(), args.index), "", `does not mention ${path.basename(file)}`);
  }

  for (const p of report.problems) console.log(p);
  if (!args.expect_failure) {
    console.log(`${report.problems.length === 0 ? "ok" : "FAILED"}: ${entries.length} objects in ` +
                `${args.files.length} files, ${report.problems.length} problems`);
    process.exit(report.problems.length === 0 ? 0 : 1);
  }
  let missed = 0;
  for (const e of expectations) {
    if (!report.problems.some((p) => p.includes(e.text))) {
      console.log(`MISSED: ${e.file}: expected a problem containing "${e.text}"`);
      ++missed;
    }
  }
  if (expectations.length === 0 || report.problems.length === 0) {
    console.log("MISSED: the fixtures were expected to fail");
    ++missed;
  }
  console.log(`${missed === 0 ? "ok" : "FAILED"}: the broken fixtures gave ${report.problems.length} ` +
              `problems; ${expectations.length - Math.min(missed, expectations.length)} of ` +
              `${expectations.length} expected ones found`);
  process.exit(missed === 0 ? 0 : 1);
}

try {
  main();
} catch (e) {
  console.log(`internal error: ${e.stack || e}`);
  process.exit(2);
}
