import { type Context, Hono } from "hono";
import type { JSX } from "hono/jsx/jsx-runtime";
import type { ApprovalView } from "../../schemas/approval";
import { displayUserCode, normalizeUserCode } from "../approvals/user-code";
import { csrfToken, csrfValid, type Session, type SignedIn } from "../authorize/session";
import { now } from "../clock";
import { Forbidden, InvalidRequest } from "../errors";
import { formBody } from "../middleware/form-body";
import { methodNotAllowed } from "../middleware/method";
import type { AppEnv } from "../types";
import { DeviceCodePage, DeviceConfirmPage, DeviceDonePage } from "../ui/inbox";
import { userPage } from "../ui/respond";
import { approvalOf, auditDecision, signedIn, signedInUser } from "./inbox";

/**
 * RFC 8628 §3.3 user interaction: the signed-in user enters the code a device shows, sees which client
 * asks for what (§5.4), and approves or denies it in the ApprovalQueue that holds the request.
 * Failed codes count against the user (§5.1): CODE_FAILURES_ALLOWED per 15 minutes.
 */
export const device = new Hono<AppEnv>();

const deviceQueue = (env: Env, code: string) => env.APPROVALS.get(env.APPROVALS.idFromName(`device:${code}`));
const userQueue = (env: Env, sub: string) => env.APPROVALS.get(env.APPROVALS.idFromName(`user:${sub}`));

device.get("/device", async (c) => {
  const typed = c.req.query("user_code");
  const session = await signedIn(c, typed ? `/device?user_code=${encodeURIComponent(typed)}` : "/device");
  if (session instanceof Response) return session;
  return userPage(c, DeviceCodePage({ csrf: await csrfToken(c), userCode: typed }) as JSX.Element);
});

device.post("/device", formBody, async (c) => {
  const user = await signedInUser(c, "/device");
  if (user instanceof Response) return user;
  if (!(await csrfValid(c, c.get("params").get("csrf")))) throw new Forbidden("the form has expired; reload the page and try again");
  const typed = c.get("params").get("user_code") ?? "";
  const found = await lookUp(c, user.session, typed);
  if (found instanceof Response) return found;
  return confirmPage(c, user, found);
});

/** RFC 8628 §5.4: what the device asks for; and whose answer the form takes, as on the consent page. */
async function confirmPage(c: Context<AppEnv>, user: SignedIn, found: { code: string; request: ApprovalView }) {
  const page = DeviceConfirmPage({
    csrf: await csrfToken(c),
    request: found.request,
    userCode: displayUserCode(found.code),
    userEmail: user.user.email,
    userId: user.user.id,
  });
  return userPage(c, page as JSX.Element);
}

device.post("/device/decide", formBody, async (c) => {
  const user = await signedInUser(c, "/device");
  if (user instanceof Response) return user;
  const { session } = user;
  const params = c.get("params");
  if (!(await csrfValid(c, params.get("csrf")))) throw new Forbidden("the form has expired; reload the page and try again");
  const decision = params.get("decision");
  const id = params.get("id");
  if (!id || (decision !== "approve" && decision !== "deny")) throw new InvalidRequest("id and decision (approve or deny) are required");
  const found = await lookUp(c, session, params.get("user_code") ?? "");
  if (found instanceof Response) return found;
  // The page was shown to another account than the one signed in now (another tab): this one is asked anew.
  if (params.get("for") !== session.sub) return confirmPage(c, user, found);
  const q = deviceQueue(c.env, found.code);
  const t = now();
  const result = decision === "approve" ? await q.approve({ id, approval: approvalOf(session), now: t }) : await q.deny({ id, sub: session.sub, now: t });
  auditDecision(c, result, decision, session.sub);
  if (!result.ok) return codePage(c, typed(found.code), "That code was already used, or has expired. Start again on the device.");
  return userPage(c, DeviceDonePage({ approved: decision === "approve" }) as JSX.Element);
});

for (const path of ["/device", "/device/decide"]) device.all(path, methodNotAllowed(path === "/device" ? "GET, POST" : "POST"));

const typed = (code: string) => displayUserCode(code);

/**
 * The pending request a typed code names. Every attempt counts as a failure for this user until the code
 * proves right (so guesses sent at once all count); a right one is taken back.
 */
async function lookUp(c: Context<AppEnv>, session: Session, input: string) {
  const mine = userQueue(c.env, session.sub);
  const t = now();
  const allowed = await mine.codeAttempt({ now: t });
  if (!allowed.ok) return codePage(c, input, `Too many wrong codes. Try again in ${Math.ceil(allowed.retry_after / 60)} minutes.`, 429);
  const code = normalizeUserCode(input);
  const request = code ? await deviceQueue(c.env, code).find({}) : null;
  if (!code || !request || request.state !== "pending" || request.expires_at <= t) {
    return codePage(c, input, "That code is not valid. Check the code on your device and try again.");
  }
  await mine.codeAttempt({ now: t, succeeded: t });
  return { code, request };
}

async function codePage(c: Context<AppEnv>, userCode: string, error: string, status: 400 | 429 = 400): Promise<Response> {
  return userPage(c, DeviceCodePage({ csrf: await csrfToken(c), userCode, error }) as JSX.Element, status);
}
