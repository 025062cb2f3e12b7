// The toolrun playground: tools in, a streamed chat out, each tool call shown as its arguments arrive.
// Plain JavaScript, no build step, no dependencies: the page must work on a machine without internet.
"use strict";

const KEY_STORAGE = "toolrun.apiKey"; // sessionStorage only: gone when the tab closes

const GITHUB_USER_TOOL = {
  name: "getGithubUser",
  description: "Provides publicly available information about someone with a GitHub account.",
  parameters: {
    type: "object",
    properties: { username: { type: "string", description: "The handle for the GitHub user account." } },
    required: ["username"],
  },
};

const WEATHER_TOOL = {
  name: "getWeather",
  description: "Return the weather for a latitude and longitude",
  parameters: {
    type: "object",
    properties: {
      latitude: { type: "string", description: "The latitude for the given location" },
      longitude: { type: "string", description: "The longitude for the given location" },
    },
    required: ["latitude", "longitude"],
  },
};

// Workers AI's function-calling examples. `results` are stand-in tool results, so a round trip works offline.
const EXAMPLES = [
  {
    label: "Who is Cloudflare on GitHub? (getGithubUser)",
    tools: [GITHUB_USER_TOOL],
    message: "Who is Cloudflare on github?",
    results: {
      getGithubUser: {
        login: "cloudflare", id: 314135, type: "Organization", name: "Cloudflare",
        location: "San Francisco", public_repos: 513, followers: 9400, blog: "https://www.cloudflare.com",
      },
    },
  },
  {
    label: "What is the weather in London? (getWeather)",
    tools: [WEATHER_TOOL],
    message: "what is the weather in london?",
    results: { getWeather: { temperature_c: 14, conditions: "light rain", wind_kph: 18 } },
  },
  {
    label: "GitHub's REST API, from its OpenAPI document",
    openapiUrl: "/playground/static/examples/partial_api.github.com.json",
    message: "Who is Cloudflare on github?",
    results: {},
  },
];

const $ = (id) => document.getElementById(id);
const state = { messages: [], cannedResults: {}, controller: null, defaultModel: null };

// ------------------------------------------------------------------ HTTP

function headers() {
  // Always JSON: a server without an API key refuses other bodies from a browser.
  const result = { "Content-Type": "application/json", Accept: "application/json, text/event-stream" };
  const key = sessionStorage.getItem(KEY_STORAGE);
  if (key) result.Authorization = `Bearer ${key}`;
  return result;
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    const error = body.error || (body.errors && body.errors[0]) || body;
    const where = error.param ? ` (${error.param})` : "";
    return `${error.message || JSON.stringify(body)}${where}`;
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

async function getJSON(path) {
  const response = await fetch(path, { headers: headers() });
  if (!response.ok) throw new Error(await errorMessage(response));
  return response.json();
}

// Server-sent events from a fetch body: "data: …" lines, events split by a blank line, ":" lines are comments.
async function* serverSentData(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = frame.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).replace(/^ /, ""));
      if (data.length) yield data.join("\n");
    }
  }
}

// ----------------------------------------------------------------- tools

function readTools() {
  const text = $("tools").value.trim();
  if (!text) return [];
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new Error(`The tools are not valid JSON: ${error.message}`);
  }
  const list = Array.isArray(parsed) ? parsed : [parsed];
  return list.map((tool, index) => {
    const fn = tool && tool.type === "function" && tool.function ? tool.function : tool;
    if (!fn || typeof fn.name !== "string" || !fn.name) {
      throw new Error(`Tool ${index + 1} has no "name"`);
    }
    return { type: "function", function: fn };
  });
}

function showTools(tools) {
  $("tools").value = JSON.stringify(tools, null, 2);
}

function setStatus(text, isError = false) {
  const status = $("tools-status");
  status.textContent = text;
  status.classList.toggle("error", isError);
}

async function importOpenAPI() {
  const url = $("openapi-url").value.trim();
  let text = $("openapi-text").value;
  try {
    if (url) {
      // The browser fetches the URL (under CORS): the server never fetches what a request names.
      setStatus(`Fetching ${url}…`);
      const response = await fetch(url);
      if (!response.ok) throw new Error(`${url} answered ${response.status} ${response.statusText}`);
      text = await response.text();
    }
    if (!text.trim()) throw new Error("Give the document's URL or paste its text.");
    setStatus("Converting…");
    const response = await fetch("/playground/openapi", {
      method: "POST",
      headers: headers(),
      body: JSON.stringify({ document: text }),
    });
    if (!response.ok) throw new Error(await errorMessage(response));
    const { tools } = await response.json();
    showTools(tools);
    setStatus(`${tools.length} tool${tools.length === 1 ? "" : "s"} from the document: ${tools.map((t) => t.name).join(", ")}`);
  } catch (error) {
    setStatus(`Could not import the document: ${error.message}`, true);
  }
}

// ------------------------------------------------------------ transcript

function addItem(className, text, testid) {
  $("empty-note")?.remove();
  const item = document.createElement("li");
  item.className = className;
  if (testid) item.dataset.testid = testid;
  item.textContent = text;
  $("transcript").append(item);
  item.scrollIntoView({ block: "nearest" });
  return item;
}

function addToolCall(call) {
  $("empty-note")?.remove();
  const item = $("tool-call-template").content.firstElementChild.cloneNode(true);
  item.querySelector(".call-name").textContent = call.function.name;
  item.querySelector(".call-id").textContent = call.id ? ` ${call.id}` : "";
  $("transcript").append(item);
  return item;
}

function prettyArguments(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text; // cut short (stopped, or an error): show what came
  }
}

// ------------------------------------------------------------------ chat

function requestBody(tools) {
  const body = { model: $("model").value, messages: state.messages, stream: true };
  if (tools.length) {
    body.tools = tools;
    body.tool_choice = $("tool-choice").value;
  }
  return body;
}

// One streamed assistant turn: content into an `assistant` element, each call into a `tool-call` element.
async function streamTurn(tools) {
  state.controller = new AbortController();
  setBusy(true);
  const turn = { role: "assistant", content: "", tool_calls: [] };
  const views = new Map(); // call index -> { call, item }
  let answer = null;
  try {
    const response = await fetch("/v1/chat/completions", {
      method: "POST",
      headers: headers(),
      body: JSON.stringify(requestBody(tools)),
      signal: state.controller.signal,
    });
    if (!response.ok) throw new Error(await errorMessage(response));
    for await (const data of serverSentData(response)) {
      if (data === "[DONE]") break;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new Error(chunk.error.message);
      const delta = (chunk.choices && chunk.choices[0] && chunk.choices[0].delta) || {};
      if (delta.content) {
        answer = answer || addItem("assistant", "", "assistant");
        turn.content += delta.content;
        answer.textContent = turn.content;
      }
      for (const part of delta.tool_calls || []) {
        let view = views.get(part.index);
        if (!view) {
          const call = { id: part.id, type: "function", function: { name: part.function.name, arguments: "" } };
          view = { call, item: addToolCall(call) };
          views.set(part.index, view);
          turn.tool_calls.push(call);
        }
        view.call.function.arguments += part.function.arguments || "";
        view.item.querySelector(".call-args").textContent = view.call.function.arguments;
        view.item.scrollIntoView({ block: "nearest" });
      }
    }
  } catch (error) {
    if (error.name !== "AbortError") addItem("error", error.message);
  } finally {
    state.controller = null;
    setBusy(false);
  }
  for (const { item, call } of views.values()) {
    item.querySelector(".call-args").textContent = prettyArguments(call.function.arguments);
  }
  if (!turn.tool_calls.length) delete turn.tool_calls;
  if (turn.content || turn.tool_calls) state.messages.push(turn);
  if (turn.tool_calls) offerResults([...views.values()]);
}

// After calls: a result field under each (filled from the example when it has one), and a button to send them.
function offerResults(views) {
  for (const { item, call } of views) {
    const field = item.querySelector(".call-result");
    field.hidden = false;
    const canned = state.cannedResults[call.function.name];
    if (canned !== undefined) field.querySelector("textarea").value = JSON.stringify(canned);
  }
  const row = addItem("actions", "");
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = views.length > 1 ? "Send the results" : "Send the result";
  button.addEventListener("click", () => {
    for (const { item, call } of views) {
      const field = item.querySelector(".call-result");
      state.messages.push({ role: "tool", tool_call_id: call.id, content: field.querySelector("textarea").value });
      field.querySelector("textarea").readOnly = true;
    }
    row.remove();
    run();
  });
  row.append(button);
  button.focus();
}

function setBusy(busy) {
  $("send").disabled = busy;
  $("stop").hidden = !busy;
  document.querySelectorAll(".actions button").forEach((b) => (b.disabled = busy));
}

async function run() {
  let tools;
  try {
    tools = readTools();
    setStatus("");
  } catch (error) {
    setStatus(error.message, true);
    $("tools").focus();
    return;
  }
  await streamTurn(tools);
}

function send(event) {
  event.preventDefault();
  const text = $("message").value.trim();
  if (!text || state.controller) return;
  document.querySelectorAll(".actions").forEach((row) => row.remove()); // unanswered calls are dropped
  state.messages = state.messages.filter((m) => !(m.tool_calls && !answered(m)));
  state.messages.push({ role: "user", content: text });
  addItem("user", text);
  $("message").value = "";
  run();
}

function answered(message) {
  return message.tool_calls.every((c) => state.messages.some((m) => m.role === "tool" && m.tool_call_id === c.id));
}

function clearChat() {
  state.controller?.abort();
  state.messages = [];
  $("transcript").replaceChildren();
  $("message").focus();
}

// --------------------------------------------------------------- set-up

function loadExample(example) {
  clearChat();
  state.cannedResults = example.results;
  $("message").value = example.message;
  if (example.openapiUrl) {
    $("openapi").open = true;
    $("openapi-url").value = new URL(example.openapiUrl, location.href).href;
    $("openapi-text").value = "";
    importOpenAPI();
  } else {
    showTools(example.tools);
    setStatus(`Example loaded: ${example.label}`);
  }
}

async function loadModels() {
  const select = $("model");
  const wanted = select.value || state.defaultModel;
  try {
    const { data } = await getJSON("/v1/models");
    const names = data.map((m) => m.id);
    select.replaceChildren(...names.map((name) => new Option(name, name)));
    if (names.includes(wanted)) select.value = wanted;
  } catch (error) {
    setStatus(`Could not list the models: ${error.message}`, true);
  }
}

async function init() {
  EXAMPLES.forEach((example, index) => $("example").append(new Option(example.label, String(index))));
  $("example").addEventListener("change", (event) => {
    if (event.target.value !== "") loadExample(EXAMPLES[Number(event.target.value)]);
  });
  $("openapi-import").addEventListener("click", importOpenAPI);
  $("tools").addEventListener("change", () => {
    try {
      showTools(JSON.parse($("tools").value)); // pasted on one line: laid out to be read
    } catch {
      // not JSON (yet): readTools says what is wrong when the message is sent
    }
  });
  $("composer").addEventListener("submit", send);
  $("message").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) send(event);
  });
  $("stop").addEventListener("click", () => state.controller?.abort());
  $("clear").addEventListener("click", clearChat);
  $("api-key").value = sessionStorage.getItem(KEY_STORAGE) || "";
  $("api-key").addEventListener("change", (event) => {
    sessionStorage.setItem(KEY_STORAGE, event.target.value.trim());
    loadModels();
  });

  let settings;
  try {
    settings = await getJSON("/playground/settings");
  } catch (error) {
    setStatus(`The server did not answer: ${error.message}`, true);
    return;
  }
  state.defaultModel = settings.default_model;
  $("api-key-field").hidden = !settings.api_key_required;
  if (settings.api_key_required && !sessionStorage.getItem(KEY_STORAGE)) {
    setStatus("This server needs an API key: enter it above to list the models and chat.");
    $("api-key").focus();
    return;
  }
  await loadModels();
}

init();
