// The chat page: POST to /v1/chat/completions with stream=true and read the SSE body with
// fetch + a stream reader (EventSource cannot POST).  Every piece of model or server text is
// put on the page with textContent, never innerHTML: a reply such as "<img onerror=...>" is
// shown as those characters and can never run (OWASP LLM05, improper output handling).
"use strict";
const $ = (id) => document.getElementById(id);
const FIELDS = ["intent", "priority", "language", "reply"];
const ALLOWED = {
  intent: ["order_status", "payment_failed", "refund_request", "delivery_complaint", "product_question",
           "cancel_order", "account_locked", "change_address", "loan_inquiry", "fraud_report"],
  priority: ["low", "medium", "high", "urgent"],
  language: ["vi", "en"],
};

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function authHeaders() {
  return { "Authorization": "Bearer " + $("key").value.trim(), "Content-Type": "application/json" };
}

async function loadModels() {
  const r = await fetch("/v1/models", { headers: authHeaders() });
  const body = await r.json();
  if (!r.ok) throw new Error(body.error ? body.error.message : "HTTP " + r.status);
  const select = $("model");
  select.textContent = "";
  for (const m of body.data) {
    const opt = document.createElement("option");
    opt.value = m.id;
    opt.textContent = m.id + (m.parent ? " (adapter on " + m.parent + ")" : "");
    select.appendChild(opt);
  }
}

function showDecision(text) {
  let obj = null;
  try { obj = JSON.parse(text); } catch (e) { obj = null; }
  const valid = obj && typeof obj === "object" && FIELDS.every((f) => f in obj) &&
    Object.keys(ALLOWED).every((f) => ALLOWED[f].includes(obj[f])) && typeof obj.reply === "string";
  for (const f of FIELDS) $(f).textContent = valid ? String(obj[f]) : "";
  return valid;
}

async function send() {
  const message = $("message").value;
  if (!message.trim()) { setStatus("Type a message first.", true); return; }
  $("send").disabled = true;
  $("stream").textContent = "";
  showDecision("");
  try {
    if (!$("model").value) await loadModels();
    setStatus("waiting for the first token…");
    const r = await fetch("/v1/chat/completions", {
      method: "POST", headers: authHeaders(),
      body: JSON.stringify({ model: $("model").value, stream: true, temperature: 0,
                             messages: [{ role: "user", content: message }] }),
    });
    if (!r.ok) {
      const body = await r.json().catch(() => ({}));
      throw new Error(body.error ? body.error.message : "HTTP " + r.status);
    }
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "", text = "", finish = null, done = false;
    while (!done) {
      const chunk = await reader.read();
      if (chunk.done) break;
      buffer += decoder.decode(chunk.value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {   // one SSE event per blank line
        const event = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        for (const line of event.split("\n")) {
          if (!line.startsWith("data: ")) continue;
          const data = line.slice(6);
          if (data === "[DONE]") { done = true; break; }
          const obj = JSON.parse(data);
          if (obj.error) throw new Error(obj.error.message);
          const choice = obj.choices && obj.choices[0];
          if (!choice) continue;
          if (choice.delta && choice.delta.content) {
            text += choice.delta.content;
            $("stream").textContent = text;       // text, never HTML
            setStatus("streaming…");
          }
          if (choice.finish_reason) finish = choice.finish_reason;
        }
      }
    }
    const valid = showDecision(text);
    setStatus("done (" + (finish || "?") + ")" + (valid ? "" : " — the answer is not valid routing JSON"), !valid);
  } catch (err) {
    setStatus("Error: " + err.message, true);
  } finally {
    $("send").disabled = false;
  }
}

$("send").addEventListener("click", send);
$("key").addEventListener("change", () => { $("model").textContent = ""; });
