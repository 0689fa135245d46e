import type { Context } from "hono";
import type { User } from "../../schemas/resource";
import { registry } from "../clients/cache";
import { now } from "../clock";
import { hmac, hmacKey } from "../crypto";
import { clientIp, underLimit } from "../middleware/rate-limit";
import { audit } from "../observe/audit";
import { burnPasswordCheck, verifyPassword } from "../password";
import type { AppEnv } from "../types";

export type SignInResult = { ok: true; user: User } | { ok: false; status: 401 | 429; message: string; retry_after?: number };

/**
 * Checks a password sign-in, with the abuse limits in front of it: LOGIN_LIMIT per IP, then a lockout
 * per email with backoff (Registry.beginLogin counts every attempt as it begins; loginSucceeded forgets them). An unknown email costs as much as a
 * wrong password and is locked the same way, so neither timing nor lockout tells which emails exist.
 */
export async function checkPassword(c: Context<AppEnv>, email: string, password: string): Promise<SignInResult> {
  if (!(await underLimit(c.env.LOGIN_LIMIT, `login:${clientIp(c)}`))) {
    audit(c, { event: "rate_limited", outcome: "failure", detail: "login" });
    return { ok: false, status: 429, message: "Too many sign-in attempts from here. Wait a minute and try again.", retry_after: 60 };
  }
  const reg = registry(c.env);
  const t = now();
  const begun = await reg.beginLogin(email, t);
  if (!begun.ok) {
    audit(c, { event: "login.locked", outcome: "failure", detail: `${await account(c, email)} retry after ${begun.retry_after}s` });
    const minutes = Math.ceil(begun.retry_after / 60);
    return {
      ok: false,
      status: 429,
      message: `Too many failed attempts. Try again in ${minutes} minute${minutes === 1 ? "" : "s"}.`,
      retry_after: begun.retry_after,
    };
  }
  const user = begun.user;
  const ok = user ? await verifyPassword(password, user.password) : await burnPasswordCheck(password);
  if (ok) await reg.loginSucceeded(email);
  if (!user || !ok) {
    audit(c, { event: "login.failed", outcome: "failure", detail: await account(c, email) });
    return { ok: false, status: 401, message: "The email or password is incorrect." };
  }
  audit(c, { event: "login.succeeded", outcome: "success", subject: user.id });
  return { ok: true, user };
}

/**
 * The account an attempt named, for the audit trail: a keyed hash of what was typed as the email (a slip of the
 * keyboard can put a password there, so no plain or fast unkeyed hash that could be guessed offline). Keyed by a
 * key derived from SESSION_SECRET: whoever holds it can compute the value for an address in question.
 */
async function account(c: Context<AppEnv>, email: string): Promise<string> {
  const key = await hmacKey(c.get("cfg").SESSION_SECRET, "latchkey audit account");
  return `account=${(await hmac(key, email)).slice(0, 16)}`;
}
