// Times @cloudflare/ai-utils' createToolsFromOpenAPISpec for bench/bench_openapi.py.
//   node bench_openapi.mjs time SPEC.json WARMUP REPS   -> one JSON line of timings (ms)
//   node bench_openapi.mjs corpus FILE...               -> one JSON line: which documents fail
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { createToolsFromOpenAPISpec } from "@cloudflare/ai-utils";

const [mode, ...rest] = process.argv.slice(2);

// ai-utils logs parse errors with console.error; keep the output one JSON line.
console.error = () => {};

if (mode === "time") {
  const [path, warmup, reps] = [rest[0], Number(rest[1]), Number(rest[2])];
  const bytes = readFileSync(path);
  const strMs = [];
  const bytesMs = [];
  let tools = 0;
  for (let i = 0; i < warmup + reps; i++) {
    // Text in: a fresh string each time, as fetch().text() would give it.
    const text = bytes.toString("utf8");
    let t = performance.now();
    tools = (await createToolsFromOpenAPISpec(text)).length;
    const s = performance.now() - t;
    // Bytes in: the document as read from a file or socket, decoded inside the timing.
    t = performance.now();
    await createToolsFromOpenAPISpec(bytes.toString("utf8"));
    const b = performance.now() - t;
    if (i >= warmup) {
      strMs.push(s);
      bytesMs.push(b);
    }
  }
  const rss = process.resourceUsage().maxRSS * 1024;
  console.log(JSON.stringify({ tools, str_ms: strMs, bytes_ms: bytesMs, max_rss_bytes: rss, node: process.version }));
} else if (mode === "corpus") {
  const failed = {};
  let tools = 0;
  for (const path of rest) {
    try {
      tools += (await createToolsFromOpenAPISpec(readFileSync(path, "utf8"))).length;
    } catch (err) {
      failed[path] = String(err && err.message ? err.message : err);
    }
  }
  console.log(JSON.stringify({ documents: rest.length, tools, failed }));
} else {
  process.stderr.write("usage: bench_openapi.mjs time SPEC WARMUP REPS | corpus FILE...\n");
  process.exit(2);
}
