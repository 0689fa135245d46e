import type { Context } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import { jwtVerify, SignJWT } from "jose";
import type { PushedRegistration } from "../../schemas/client";
import type { User } from "../../schemas/resource";
import { registry } from "../clients/cache";
import { now } from "../clock";
import { hmac, hmacKey, randomToken, sha256, timingSafeEqualStrings } from "../crypto";
import type { AppEnv } from "../types";
import type { AuthorizationRequest } from "./request";

/**
 * Browser state for the login and consent pages, all signed with keys derived from SESSION_SECRET:
 * - the session cookie: who signed in and when (HttpOnly, SameSite=Lax, Secure except on localhost);
 * - the interaction: the validated authorization request, carried through the pages as a signed token;
 * - CSRF tokens: an HMAC of a per-browser cookie, submitted with every form (signed double submit);
 * - the browser binding: a random per-browser cookie that ties a pushed request to the browser that opened it.
 */
export interface Session {
  sub: string;
  auth_time: number;
  amr: string[];
  /** The user's session generation when it began (`User.session_generation`; absent: 0). */
  generation?: number;
  /** When the session cookie expires (seconds), as read back from it. */
  exp?: number;
}

/** The pushed request (RFC 9126) an interaction came from: consumed when the code is issued. */
export interface PushedReference {
  /** Hex id of the PushedRequest Durable Object. */
  object_id: string;
  /** Hash of the `request_uri` handle. */
  hash: string;
  /** For the unregistered client of pushed client registration: what it said about itself. */
  registration?: PushedRegistration;
}

export interface Interaction extends AuthorizationRequest {
  /** When the authorization request arrived (the interaction expires relative to it). */
  iat: number;
  pushed?: PushedReference;
  /**
   * The sign-in made for this interaction (POST /login). While it is still the browser's session, it
   * satisfies `prompt=login`, and `max_age` for at least a minute (`needsLogin`); it yields one code.
   */
  signed_in?: {
    sub: string;
    auth_time: number;
    /** Names this sign-in, so that it yields one code. */
    id: string;
  };
}

/** How long a user has to get through login and consent. */
export const INTERACTION_TTL = 900;

function secure(c: Context<AppEnv>): boolean {
  return new URL(c.get("cfg").ISSUER).protocol === "https:";
}

/** `__Host-` cookies are bound to this exact origin, but require Secure, which http://localhost lacks. */
function cookieName(c: Context<AppEnv>, base: string): string {
  return secure(c) ? `__Host-${base}` : base;
}

async function jwtKey(c: Context<AppEnv>, purpose: string): Promise<Uint8Array> {
  // jose wants raw bytes for HS256; derive them per purpose so one token can never pass as another.
  const key = await hmacKey(c.get("cfg").SESSION_SECRET, `latchkey ${purpose}`);
  return new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode("jwt")));
}

export async function readSession(c: Context<AppEnv>): Promise<Session | null> {
  const raw = getCookie(c, cookieName(c, "lk_session"));
  if (!raw) return null;
  try {
    const { payload } = await jwtVerify<Session>(raw, await jwtKey(c, "session"), {
      issuer: c.get("cfg").ISSUER,
      audience: "session",
      algorithms: ["HS256"],
      currentDate: new Date(now() * 1000),
    });
    return {
      sub: payload.sub,
      auth_time: payload.auth_time,
      amr: payload.amr,
      ...(payload.generation !== undefined ? { generation: payload.generation } : {}),
      ...(payload.exp !== undefined ? { exp: payload.exp } : {}),
    };
  } catch {
    return null;
  }
}

/** A session whose user still exists, and that user. */
export interface SignedIn {
  session: Session;
  user: User;
}

/**
 * The session, if its user still exists and has not signed out everywhere since it began. The cookie is only
 * signed, so it outlives a deleted account or such a sign-out: it is then cleared and counts as no session,
 * and no page or code is given for it.
 */
export async function activeSession(c: Context<AppEnv>): Promise<SignedIn | null> {
  const session = await readSession(c);
  if (!session) return null;
  const user = await registry(c.env).getUser(session.sub);
  if (!user || (user.session_generation ?? 0) !== (session.generation ?? 0)) {
    clearSession(c);
    return null;
  }
  return { session, user };
}

export async function writeSession(c: Context<AppEnv>, session: Session): Promise<void> {
  const ttl = c.get("cfg").SESSION_TTL;
  const value = await new SignJWT({ auth_time: session.auth_time, amr: session.amr, ...(session.generation ? { generation: session.generation } : {}) })
    .setProtectedHeader({ alg: "HS256" })
    .setIssuer(c.get("cfg").ISSUER)
    .setAudience("session")
    .setSubject(session.sub)
    .setIssuedAt(now())
    .setExpirationTime(now() + ttl)
    .sign(await jwtKey(c, "session"));
  setCookie(c, cookieName(c, "lk_session"), value, { path: "/", httpOnly: true, secure: secure(c), sameSite: "Lax", maxAge: ttl });
}

export function clearSession(c: Context<AppEnv>): void {
  deleteCookie(c, cookieName(c, "lk_session"), { path: "/", secure: secure(c) });
}

export async function sealInteraction(c: Context<AppEnv>, request: Omit<Interaction, "iat">, iat = now()): Promise<string> {
  return new SignJWT({ request })
    .setProtectedHeader({ alg: "HS256" })
    .setIssuer(c.get("cfg").ISSUER)
    .setAudience("interaction")
    .setIssuedAt(iat)
    .setExpirationTime(iat + INTERACTION_TTL)
    .sign(await jwtKey(c, "interaction"));
}

/** The interaction a page or form carries, or null when missing, tampered with or expired. */
export async function openInteraction(c: Context<AppEnv>, token: string | undefined): Promise<Interaction | null> {
  if (!token) return null;
  try {
    const { payload } = await jwtVerify<{ request: Omit<Interaction, "iat"> }>(token, await jwtKey(c, "interaction"), {
      issuer: c.get("cfg").ISSUER,
      audience: "interaction",
      algorithms: ["HS256"],
      currentDate: new Date(now() * 1000),
    });
    return { ...payload.request, iat: payload.iat as number };
  } catch {
    return null;
  }
}

/** Cookies minted by a request, so that every use in the request agrees on the one value it set. */
const minted = new WeakMap<Request, Map<string, string>>();

/**
 * The value of a random HttpOnly cookie of this browser, set if it has none (once per request). SameSite=Lax,
 * not Strict: a Strict cookie stays behind on the navigation from a client's site, so a fresh one would
 * replace it and break other tabs' forms and pushed requests. A cross-site POST still comes without it.
 */
function browserCookie(c: Context<AppEnv>, base: string, maxAge?: number): string {
  const name = cookieName(c, base);
  const sent = getCookie(c, name);
  if (sent && /^[A-Za-z0-9_-]{43}$/.test(sent)) return sent;
  const made = minted.get(c.req.raw) ?? new Map<string, string>();
  minted.set(c.req.raw, made);
  const known = made.get(name);
  if (known) return known;
  const value = randomToken(32);
  setCookie(c, name, value, { path: "/", httpOnly: true, secure: secure(c), sameSite: "Lax", ...(maxAge ? { maxAge } : {}) });
  made.set(name, value);
  return value;
}

/** The CSRF token for this browser's forms, setting the browser cookie if it has none. */
export async function csrfToken(c: Context<AppEnv>): Promise<string> {
  return hmac(await hmacKey(c.get("cfg").SESSION_SECRET, "latchkey csrf"), browserCookie(c, "lk_csrf"));
}

/** Whether a submitted CSRF token belongs to this browser. */
export async function csrfValid(c: Context<AppEnv>, submitted: string | undefined): Promise<boolean> {
  const binding = getCookie(c, cookieName(c, "lk_csrf"));
  if (!binding || !submitted) return false;
  const expected = await hmac(await hmacKey(c.get("cfg").SESSION_SECRET, "latchkey csrf"), binding);
  return timingSafeEqualStrings(expected, submitted);
}

/**
 * This browser's binding for pushed requests: base64url SHA-256 of a random HttpOnly cookie, set if the
 * browser has none, for as long as a sign-in session lasts. The request that opens a pushed request may
 * also use it up (a signed-in user who consented before): both see the same value.
 */
export async function browserBinding(c: Context<AppEnv>): Promise<string> {
  return sha256(browserCookie(c, "lk_browser", c.get("cfg").SESSION_TTL));
}
