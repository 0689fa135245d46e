import type { ApprovalView } from "../../schemas/approval";
import type { Connected } from "../approvals/connected";
import { Layout } from "./layout";

/** One request: who asks, the binding message to compare, what for, where; Approve and Deny. */
export function RequestCard(props: { request: ApprovalView; csrf: string; action: string; extra?: Record<string, string> }) {
  const r = props.request;
  return (
    <li class="request" data-id={r.id}>
      <h2>{r.client_name}</h2>
      <p class="muted">
        client <code>{r.client_id}</code>
        {r.step_up ? " · asks to extend access it already has" : ""}
      </p>
      {r.self_registered ? (
        <p class="self-asserted">It registered itself; nobody at this server has verified who runs it, and its name is its own claim.</p>
      ) : null}
      {r.binding_message ? (
        <p>
          Binding message: <strong class="binding">{r.binding_message}</strong>
        </p>
      ) : null}
      <p>Scopes:</p>
      <ul class="scopes">
        {r.scope.map((s) => (
          <li>{s}</li>
        ))}
      </ul>
      {r.resources.length ? (
        <p>
          On:{" "}
          {r.resources.map((uri) => (
            <code>{uri}</code>
          ))}
        </p>
      ) : null}
      <form method="post" action={props.action}>
        <input type="hidden" name="id" value={r.id} />
        <input type="hidden" name="csrf" value={props.csrf} />
        {Object.entries(props.extra ?? {}).map(([name, value]) => (
          <input type="hidden" name={name} value={value} />
        ))}
        <div class="actions">
          <button type="submit" name="decision" value="approve">
            Approve
          </button>
          <button type="submit" name="decision" value="deny">
            Deny
          </button>
        </div>
      </form>
    </li>
  );
}

/** The inbox: pending requests, kept current over a WebSocket by `/assets/inbox.js`; forms work without it. */
export function InboxPage(props: {
  email: string;
  csrf: string;
  requests: ApprovalView[];
  notice?: string;
  vapidKey: string;
  webhook: string | null;
  connected: Connected[];
}) {
  return (
    <Layout title="Inbox">
      <h1>Requests waiting for you</h1>
      <form method="post" action="/signout" class="signout">
        <span class="muted">Signed in as {props.email}</span> <input type="hidden" name="csrf" value={props.csrf} />
        <button type="submit">Sign out</button>
        <button type="submit" name="everywhere" value="yes">
          Sign out everywhere
        </button>
      </form>
      {props.notice ? (
        <p role="status" id="notice">
          {props.notice}
        </p>
      ) : null}
      <p id="empty" hidden={props.requests.length > 0}>
        Nothing is waiting for you.
      </p>
      <ul id="requests" class="requests" data-csrf={props.csrf}>
        {props.requests.map((r) => (
          <RequestCard request={r} csrf={props.csrf} action="/inbox/decide" />
        ))}
      </ul>
      <ConnectedList connected={props.connected} csrf={props.csrf} />
      <button type="button" id="enable-push" hidden data-vapid-key={props.vapidKey}>
        Notify me of new requests
      </button>
      <form method="post" action="/inbox/webhook">
        <input type="hidden" name="csrf" value={props.csrf} />
        <label for="webhook">Webhook for new requests (signed, RFC 9421)</label>
        <input id="webhook" name="url" type="url" value={props.webhook ?? ""} placeholder="https://gateway.example/hook" />
        <button type="submit">Save webhook</button>
      </form>
      <script src="/assets/inbox.js" defer></script>
    </Layout>
  );
}

/** RFC 8628 §3.3: where the user types the code the device shows. */
export function DeviceCodePage(props: { csrf: string; userCode?: string; error?: string }) {
  return (
    <Layout title="Connect a device">
      <h1>Connect a device</h1>
      <p>Enter the code shown on the device.</p>
      {props.error ? (
        <p class="error" role="alert">
          {props.error}
        </p>
      ) : null}
      <form method="post" action="/device">
        <input type="hidden" name="csrf" value={props.csrf} />
        <label for="user_code">Code</label>
        <input id="user_code" name="user_code" autocomplete="off" autocapitalize="characters" required value={props.userCode ?? ""} />
        <button type="submit">Continue</button>
      </form>
    </Layout>
  );
}

/** RFC 8628 §5.4: show the client prominently before the user approves (remote phishing). */
export function DeviceConfirmPage(props: { csrf: string; request: ApprovalView; userCode: string; userEmail: string; userId: string }) {
  return (
    <Layout title="Approve this device?">
      <h1>Approve this device?</h1>
      <p>Only approve if you started this on a device you own, and it shows the code {props.userCode}.</p>
      <p class="muted">Signed in as {props.userEmail}</p>
      <ul class="requests">
        <RequestCard request={props.request} csrf={props.csrf} action="/device/decide" extra={{ user_code: props.userCode, for: props.userId }} />
      </ul>
    </Layout>
  );
}

/** The end of the device flow. */
export function DeviceDonePage(props: { approved: boolean }) {
  return (
    <Layout title={props.approved ? "Device connected" : "Device refused"}>
      <h1>{props.approved ? "Device connected" : "Device refused"}</h1>
      <p role="status">{props.approved ? "You can return to your device." : "The device was not given access."}</p>
    </Layout>
  );
}

/** What the user has let applications do on their behalf, each with a way to take it back. */
function ConnectedList(props: { connected: Connected[]; csrf: string }) {
  return (
    <section aria-labelledby="connected-heading">
      <h2 id="connected-heading">Applications with access</h2>
      {props.connected.length === 0 ? <p class="muted">No application has access on your behalf.</p> : null}
      <ul class="requests">
        {props.connected.map((g) => (
          <li class="request">
            <h3>{g.client_name}</h3>
            <p class="muted">
              Since {new Date(g.since * 1000).toISOString().slice(0, 10)}: {g.scope.join(" ") || "(no scope)"}
              {g.resources.length ? ` on ${g.resources.join(", ")}` : ""}
            </p>
            <form method="post" action="/inbox/revoke">
              <input type="hidden" name="csrf" value={props.csrf} />
              <input type="hidden" name="grant_id" value={g.grant_id} />
              <button type="submit">Revoke access</button>
            </form>
          </li>
        ))}
      </ul>
    </section>
  );
}
