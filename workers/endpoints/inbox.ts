import { type Context, Hono } from "hono";
import type { JSX } from "hono/jsx/jsx-runtime";
import * as v from "valibot";
import type { DecideResult } from "../../durable-objects/approval-queue";
import { SESSION_UNTIL_HEADER } from "../../durable-objects/inbox-sockets";
import type { Approval } from "../../schemas/approval";
import { connectedApps, revokeConnected } from "../approvals/connected";
import { activeSession, clearSession, csrfToken, csrfValid, type Session, type SignedIn, writeSession } from "../authorize/session";
import { checkPassword } from "../authorize/sign-in";
import { registry } from "../clients/cache";
import { notificationUrlProblem, outboundPolicy } from "../clients/safe-fetch";
import { now } from "../clock";
import { Forbidden, InvalidRequest } from "../errors";
import { formBody } from "../middleware/form-body";
import { methodNotAllowed } from "../middleware/method";
import { notifyKey, publicKeyOf } from "../notify/keys";
import { webhookJwks } from "../notify/webhook";
import { audit } from "../observe/audit";
import type { AppEnv } from "../types";
import { InboxPage } from "../ui/inbox";
import { INBOX_SCRIPT, SERVICE_WORKER } from "../ui/inbox-script";
import { LoginPage } from "../ui/pages";
import { safeNext, userPage } from "../ui/respond";

/**
 * The approval inbox (`/inbox`): the signed-in user's pending CIBA requests with Approve and Deny
 * (CSRF-protected forms that work without JavaScript), kept current over a WebSocket to the user's
 * ApprovalQueue, and Web Push subscriptions. `/signin` is its sign-in page (and the device page's).
 */
export const inbox = new Hono<AppEnv>();

const queue = (env: Env, sub: string) => env.APPROVALS.get(env.APPROVALS.idFromName(`user:${sub}`));

inbox.get("/assets/inbox.js", (c) => c.body(INBOX_SCRIPT, 200, { "Content-Type": "text/javascript; charset=utf-8", "Cache-Control": "no-cache" }));
inbox.get("/inbox/sw.js", (c) => c.body(SERVICE_WORKER, 200, { "Content-Type": "text/javascript; charset=utf-8", "Cache-Control": "no-cache" }));

// ── sign-in ────────────────────────────────────────────────────────────────────────────────
inbox.get("/signin", async (c) => signInPage(c, safeNext(c.req.query("next"))));

inbox.post("/signin", formBody, async (c) => {
  const params = c.get("params");
  const next = safeNext(params.get("next"));
  if (!(await csrfValid(c, params.get("csrf")))) return signInPage(c, next, "The form has expired; please try again.");
  const email = params.get("email")?.trim().toLowerCase();
  const password = params.get("password");
  if (!email || !password) return signInPage(c, next, "Enter your email and password.", email);
  // The same abuse limits as the authorization sign-in: LOGIN_LIMIT per IP and per-account lockout.
  const checked = await checkPassword(c, email, password);
  if (!checked.ok) {
    if (checked.retry_after) c.header("Retry-After", String(checked.retry_after));
    return signInPage(c, next, checked.message, email, checked.status === 429 ? 429 : 403);
  }
  await writeSession(c, { sub: checked.user.id, auth_time: now(), amr: ["pwd"], generation: checked.user.session_generation ?? 0 });
  return c.redirect(next, 303);
});

/**
 * Sign-out: this browser's session ends; with `everywhere`, every session of the user so far (other browsers,
 * a forgotten shared machine) ends too, at its next request; open inbox pages are disconnected and Web Push
 * subscriptions dropped (each browser subscribes again when its user signs in there and asks for it).
 */
inbox.post("/signout", formBody, async (c) => {
  const params = c.get("params");
  if (!(await csrfValid(c, params.get("csrf")))) throw new Forbidden("the form has expired; reload the page and try again");
  const active = await activeSession(c);
  if (active && params.get("everywhere") === "yes") {
    // Every session so far, and what keeps reaching a forgotten machine: its live inbox and its push subscription.
    await registry(c.env).endSessions({ id: active.user.id });
    await queue(c.env, active.user.id).signedOutEverywhere();
    audit(c, { event: "session.ended", outcome: "success", subject: active.user.id, detail: "everywhere" });
  }
  clearSession(c);
  return c.redirect("/signin?next=%2Finbox", 303);
});

async function signInPage(c: Context<AppEnv>, next: string, error?: string, email?: string, status: 403 | 429 = 403): Promise<Response> {
  const purpose = next.startsWith("/device") ? "to connect a device" : "to see the requests waiting for you";
  return userPage(c, LoginPage({ csrf: await csrfToken(c), next, purpose, error, email }) as JSX.Element, error ? status : 200);
}

/** The signed-in user (one who still exists), or a redirect to the sign-in page that comes back to `next`. */
export async function signedIn(c: Context<AppEnv>, next: string): Promise<Session | Response> {
  const active = await signedInUser(c, next);
  return active instanceof Response ? active : active.session;
}

/** `signedIn`, with the user too (for pages that say whose answer they take). */
export async function signedInUser(c: Context<AppEnv>, next: string): Promise<SignedIn | Response> {
  return (await activeSession(c)) ?? c.redirect(`/signin?next=${encodeURIComponent(next)}`, 303);
}

/** A user's decision on a request (inbox or device page), as an audit event: who let which client do what. */
export function auditDecision(c: Context<AppEnv>, result: DecideResult, decision: "approve" | "deny", sub: string): void {
  if (!result.ok) return;
  const { request } = result;
  const what = `${request.kind} ${request.id} scope=${request.scope.join(" ")}${request.extends_grant ? ` extends=${request.extends_grant}` : ""}`;
  audit(c, {
    event: decision === "approve" ? "approval.approved" : "approval.denied",
    outcome: "success",
    client_id: request.client_id,
    subject: sub,
    detail: what,
  });
}

/** Approval facts from a session: who, and how they signed in (OIDC `auth_time`, RFC 8176 `amr`). */
export function approvalOf(session: Session): Approval {
  return { sub: session.sub, auth_time: session.auth_time, amr: session.amr };
}

// ── the inbox ──────────────────────────────────────────────────────────────────────────────
const NOTICES: Record<string, string> = {
  approved: "Approved.",
  denied: "Denied.",
  gone: "That request was already decided, or has expired.",
  webhook: "Webhook saved.",
  revoked: "Access revoked.",
  unknown: "That application has no access to revoke.",
};

inbox.get("/inbox", async (c) => {
  const signed = await signedInUser(c, "/inbox");
  if (signed instanceof Response) return signed;
  const { session, user } = signed;
  const q = queue(c.env, session.sub);
  const [requests, vapid, webhook, connected] = await Promise.all([
    q.pending({ now: now() }),
    notifyKey(c.env, "vapid"),
    q.webhook(),
    connectedApps(c.env, session.sub, now()),
  ]);
  const notice = NOTICES[c.req.query("done") ?? ""];
  const csrf = await csrfToken(c);
  const body = InboxPage({ email: user.email, csrf, requests, notice, vapidKey: publicKeyOf(vapid.publicJwk), webhook, connected });
  return userPage(c, body as JSX.Element);
});

/** An inbox form's poster: the signed-in user once the form's CSRF token holds, else where to sign in. */
async function formSession(c: Context<AppEnv>): Promise<Session | Response> {
  const session = await signedIn(c, "/inbox");
  if (session instanceof Response) return session;
  if (!(await csrfValid(c, c.get("params").get("csrf")))) throw new Forbidden("the form has expired; reload the inbox and try again");
  return session;
}

/** The user takes back access they gave: the grant is revoked, its refresh and access tokens with it. */
inbox.post("/inbox/revoke", formBody, async (c) => {
  const session = await formSession(c);
  if (session instanceof Response) return session;
  const params = c.get("params");
  const grantId = params.get("grant_id");
  if (!grantId) throw new InvalidRequest("grant_id is required");
  const revoked = await revokeConnected(c.env, session.sub, grantId, now());
  if (revoked) {
    const detail = `grant ${grantId} scope=${revoked.scope.join(" ")}`;
    audit(c, { event: "grant.revoked", outcome: "success", client_id: revoked.client_id, subject: session.sub, detail });
  }
  return c.redirect(`/inbox?done=${revoked ? "revoked" : "unknown"}`, 303);
});

inbox.post("/inbox/decide", formBody, async (c) => {
  const session = await formSession(c);
  if (session instanceof Response) return session;
  const params = c.get("params");
  const id = params.get("id");
  const decision = params.get("decision");
  if (!id || (decision !== "approve" && decision !== "deny")) throw new InvalidRequest("id and decision (approve or deny) are required");
  const q = queue(c.env, session.sub);
  const t = now();
  const result = decision === "approve" ? await q.approve({ id, approval: approvalOf(session), now: t }) : await q.deny({ id, sub: session.sub, now: t });
  auditDecision(c, result, decision, session.sub);
  return c.redirect(`/inbox?done=${result.ok ? (decision === "approve" ? "approved" : "denied") : "gone"}`, 303);
});

/** The live list: a WebSocket to the user's ApprovalQueue, from our own pages only (cross-site WebSocket hijacking). */
inbox.get("/inbox/live", async (c) => {
  if (c.req.header("upgrade")?.toLowerCase() !== "websocket") throw new InvalidRequest("expected a WebSocket upgrade");
  if (c.req.header("origin") !== new URL(c.get("cfg").ISSUER).origin) throw new Forbidden("WebSocket connections are accepted from this origin only");
  const session = (await activeSession(c))?.session;
  if (!session) throw new Forbidden("sign in first");
  // The socket lives no longer than the session that opened it (the queue closes it then).
  const headers = new Headers(c.req.raw.headers);
  headers.set(SESSION_UNTIL_HEADER, String(session.exp ?? now()));
  return queue(c.env, session.sub).fetch(new Request(c.req.raw, { headers }));
});

// ── Web Push subscriptions (W3C Push API `PushSubscription.toJSON()`) ─────────────────────────
const key = (len: number) => v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]+$/), v.length(len));
const SubscriptionSchema = v.object({
  endpoint: v.pipe(v.string(), v.url(), v.maxLength(2000)),
  keys: v.object({ p256dh: key(87), auth: key(22) }),
});

inbox.on(["POST", "DELETE"], "/inbox/push-subscriptions", async (c) => {
  const session = (await activeSession(c))?.session;
  if (!session) throw new Forbidden("sign in first");
  if (!(await csrfValid(c, c.req.header("x-csrf-token")))) throw new Forbidden("missing or wrong CSRF token");
  let parsed: v.InferOutput<typeof SubscriptionSchema>;
  try {
    parsed = v.parse(SubscriptionSchema, await c.req.json());
  } catch {
    throw new InvalidRequest("the body must be a push subscription (endpoint and keys p256dh, auth)");
  }
  // RFC 8030 §8: push messages go over https only (a loopback push service is for local development).
  const problem = notificationProblem(c, parsed.endpoint);
  if (problem) throw new InvalidRequest(`the push endpoint ${problem}`);
  const q = queue(c.env, session.sub);
  if (c.req.method === "DELETE") await q.unsubscribe({ endpoint: parsed.endpoint });
  else await q.subscribe({ ...parsed, created_at: now() });
  return c.body(null, 204);
});

// ── signed webhooks (RFC 9421) ───────────────────────────────────────────────────────────────
/** The user's webhook for chat or SMS gateways: https (http on loopback only in dev); empty removes it. */
inbox.post("/inbox/webhook", formBody, async (c) => {
  const session = await formSession(c);
  if (session instanceof Response) return session;
  const params = c.get("params");
  const url = params.get("url");
  const problem = url === undefined ? null : notificationProblem(c, url);
  if (problem) throw new InvalidRequest(`the webhook URL ${problem}`);
  await queue(c.env, session.sub).setWebhook({ url: url ?? null });
  return c.redirect("/inbox?done=webhook", 303);
});

/** The public key webhooks are signed with (RFC 7517 JWK Set); `keyid` in Signature-Input is its `kid`. */
inbox.get("/webhook-keys", async (c) => {
  const key = await notifyKey(c.env, "webhook");
  return c.json(webhookJwks(key), 200, { "Cache-Control": "public, max-age=3600" });
});

/** Why `value` cannot be POSTed to (`notificationUrlProblem`; http on loopback in dev), or null. */
function notificationProblem(c: Context<AppEnv>, value: string): string | null {
  const cfg = c.get("cfg");
  return notificationUrlProblem(value, outboundPolicy(cfg), cfg.ENVIRONMENT === "dev");
}

const ALLOWED: Record<string, string> = {
  "/inbox/decide": "POST",
  "/inbox/revoke": "POST",
  "/inbox/webhook": "POST",
  "/signin": "GET, POST",
  "/signout": "POST",
  "/inbox": "GET",
  "/inbox/live": "GET",
  "/inbox/push-subscriptions": "POST, DELETE",
  "/webhook-keys": "GET",
  "/assets/inbox.js": "GET",
  "/inbox/sw.js": "GET",
};
for (const [path, allow] of Object.entries(ALLOWED)) inbox.all(path, methodNotAllowed(allow));
