// Times @cloudflare/ai-utils' runWithTools on an instant stand-in `ai`: the
// framework's own cost per run (1 round with one tool call, then the final
// answer), with no model in the way. Driven by bench/bench_embedded.py, which
// runs the same loop through toolrun and compares.
//
//   node loop.mjs <runs per repetition> <repetitions> <strict: 0|1>
// prints one JSON object: {"per_run_us": [..one figure per repetition..]}
import { runWithTools } from "@cloudflare/ai-utils";

const [runs = 20000, repetitions = 5, strict = 0] = process.argv.slice(2).map(Number);

const CALL = { name: "get_weather", arguments: { city: "Mumbai" } };
// Answers at once: a tool call when tools are offered, the final text otherwise.
const ai = {
  async run(model, inputs) {
    if (inputs.tools && inputs.tools.length) {
      return { response: "", tool_calls: [CALL], usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 } };
    }
    return { response: "It is sunny in Mumbai.", tool_calls: [], usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 } };
  },
};

const tools = [
  {
    name: "get_weather",
    description: "Gets weather information of a particular city.",
    parameters: {
      type: "object",
      properties: { city: { type: "string", description: "The city name." } },
      required: ["city"],
    },
    function: async ({ city }) => `Sunny in ${city}`,
  },
];

async function once() {
  const out = await runWithTools(
    ai,
    "@local/qwen2.5-coder-0.5b-instruct",
    { messages: [{ role: "user", content: "What's the weather in Mumbai, India?" }], tools },
    { maxRecursiveToolRuns: 0, strictValidation: Boolean(strict) },
  );
  if (out.response !== "It is sunny in Mumbai.") throw new Error("unexpected answer: " + JSON.stringify(out));
}

for (let i = 0; i < Math.min(runs, 2000); i++) await once(); // warm the JIT
const perRun = [];
for (let r = 0; r < repetitions; r++) {
  const start = process.hrtime.bigint();
  for (let i = 0; i < runs; i++) await once();
  perRun.push(Number(process.hrtime.bigint() - start) / 1000 / runs);
}
console.log(JSON.stringify({ per_run_us: perRun }));
