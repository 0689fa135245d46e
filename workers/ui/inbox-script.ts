/**
 * The inbox's scripts, served same-origin (`/assets/inbox.js`, `/inbox/sw.js`) so the CSP can keep
 * `default-src 'none'` with `script-src 'self'` and no inline script. The page works without them:
 * its forms post and redirect; the script only keeps the list current and offers Web Push.
 */
export const INBOX_SCRIPT = `"use strict";
(() => {
  const list = document.getElementById("requests");
  const empty = document.getElementById("empty");
  const csrf = list.dataset.csrf;
  const el = (tag, attrs, ...children) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    for (const c of children) e.append(c);
    return e;
  };
  const hidden = (name, value) => el("input", { type: "hidden", name, value });
  const card = (r) => {
    const scopes = el("ul", { class: "scopes" }, ...r.scope.map((s) => el("li", {}, s)));
    const form = el("form", { method: "post", action: "/inbox/decide" }, hidden("id", r.id), hidden("csrf", csrf),
      el("div", { class: "actions" },
        el("button", { type: "submit", name: "decision", value: "approve" }, "Approve"),
        el("button", { type: "submit", name: "decision", value: "deny" }, "Deny")));
    const meta = el("p", { class: "muted" }, "client ", el("code", {}, r.client_id), r.step_up ? " · asks to extend access it already has" : "");
    const parts = [el("h2", {}, r.client_name), meta];
    if (r.self_registered) parts.push(el("p", { class: "self-asserted" }, "It registered itself; nobody at this server has verified who runs it, and its name is its own claim."));
    if (r.binding_message) parts.push(el("p", {}, "Binding message: ", el("strong", { class: "binding" }, r.binding_message)));
    parts.push(el("p", {}, "Scopes:"), scopes);
    if (r.resources.length) parts.push(el("p", {}, "On: ", ...r.resources.map((u) => el("code", {}, u))));
    parts.push(form);
    return el("li", { class: "request", "data-id": r.id }, ...parts);
  };
  const render = (requests) => {
    list.replaceChildren(...requests.map(card));
    empty.hidden = requests.length > 0;
  };
  const connect = () => {
    const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/inbox/live");
    ws.onopen = () => { document.body.dataset.live = "connected"; };
    ws.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "pending") render(message.requests);
    };
    ws.onclose = (event) => {
      document.body.dataset.live = "disconnected";
      // 4001: the session ended (it ran out, or the user signed out everywhere): sign in again, not retry.
      if (event.code === 4001) location.assign("/signin?next=%2Finbox");
      else setTimeout(connect, 2000);
    };
  };
  connect();

  const button = document.getElementById("enable-push");
  if (button && "serviceWorker" in navigator && "PushManager" in window) {
    button.hidden = false;
    button.addEventListener("click", async () => {
      const registration = await navigator.serviceWorker.register("/inbox/sw.js", { scope: "/inbox/" });
      const subscription = await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: button.dataset.vapidKey });
      await fetch("/inbox/push-subscriptions", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify(subscription),
      });
      button.textContent = "Notifications are on";
      button.disabled = true;
    });
  }
})();
`;

/** The service worker: shows a notification for each push and opens the inbox when it is clicked. */
export const SERVICE_WORKER = `"use strict";
self.addEventListener("push", (event) => {
  const data = event.data ? event.data.json() : {};
  event.waitUntil(self.registration.showNotification(data.title || "Latchkey", { body: data.body || "", data: { url: data.url || "/inbox" }, tag: data.id }));
});
self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  event.waitUntil(self.clients.openWindow(event.notification.data.url));
});
`;
