import type { Config } from "../config";
import { ipLiteral, isLoopback, specialUseBlock } from "./special-use-ip";

/**
 * The one way Latchkey fetches a URL that a client supplied (its client ID metadata document, its
 * jwks_uri). CIMD "SSRF Attacks" and RFC 9700 §4.15: such URLs must never reach special-use addresses,
 * and the answer is untrusted input of bounded size and time. IP literals in special-use ranges and
 * names of local networks are refused here. What a public name resolves to is not checked: a check
 * before the fetch could be undone by DNS rebinding before the runtime resolves it again. Production and
 * preview run with `global_fetch_strictly_public`, which sends every fetch out to the public Internet as
 * any client's request (never to this zone's origin or another Worker's internal route).
 */
export interface OutboundPolicy {
  /** Deadline for the whole exchange, body included, in milliseconds. */
  timeoutMs: number;
  /** Ports other than 443 that may be fetched. */
  allowedPorts: readonly number[];
  /** DEV ONLY: plain http and loopback hosts (localhost, 127.0.0.0/8, [::1]) on any port. */
  allowInsecureLoopbackClientIds: boolean;
}

/** CIMD "Maximum Response Size": "The recommended maximum size to read is 5 kilobytes." */
export const MAX_DOCUMENT_BYTES = 5 * 1024;

export function outboundPolicy(cfg: Config): OutboundPolicy {
  return {
    timeoutMs: cfg.OUTBOUND_FETCH_TIMEOUT_MS,
    allowedPorts: cfg.OUTBOUND_FETCH_ALLOWED_PORTS,
    allowInsecureLoopbackClientIds: cfg.ALLOW_INSECURE_LOOPBACK_CLIENT_IDS,
  };
}

/** Host names that name this machine or a local network (RFC 6761 §6.3, RFC 6762, RFC 8375, ICANN `.internal`). */
const LOCAL_NAMES = /(^|\.)(localhost|local|internal|home\.arpa)$/;

/**
 * Why `raw` may not be fetched under `policy`, as a phrase (`"must use https"`), or null when it may.
 * Checks the string as given (fragment, userinfo) and then the parsed URL (scheme, host, port), so
 * that every spelling the URL parser normalises is judged by what it means.
 */
export function outboundUrlProblem(raw: string, policy: OutboundPolicy): string | null {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return "is not an absolute URL";
  }
  if (raw.includes("#")) return "must not contain a fragment";
  if (url.username || url.password || /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*@/i.test(raw)) return "must not contain user information";
  const host = url.hostname.replace(/\.$/, "").toLowerCase();
  const ip = ipLiteral(host);
  const loopback = ip ? isLoopback(ip) : host === "localhost";
  if (policy.allowInsecureLoopbackClientIds && loopback && (url.protocol === "https:" || url.protocol === "http:")) return null;
  if (url.protocol !== "https:") return "must use https";
  if (ip) {
    const block = specialUseBlock(ip);
    if (block) return `must not point to a special-use IP address (${block})`;
  } else if (!host.includes(".") || LOCAL_NAMES.test(host)) {
    return "must name a public host";
  }
  if (url.port !== "" && !policy.allowedPorts.includes(Number(url.port))) return `must not use port ${url.port} (only 443 is allowed)`;
  return null;
}

/**
 * Why a URL Latchkey POSTs notifications to (a CIBA client notification endpoint, a user's webhook or Web
 * Push endpoint) may not be used, or null: the rules of client-supplied URLs, and with `devLoopback` plain
 * http on loopback too, where local clients listen.
 */
export function notificationUrlProblem(raw: string, policy: OutboundPolicy, devLoopback: boolean): string | null {
  if (raw.length > 2000) return "must be at most 2000 characters";
  return outboundUrlProblem(raw, { ...policy, allowInsecureLoopbackClientIds: devLoopback });
}

/** Why a fetch failed: a closed set, mapped by each caller to its own error. */
export type FetchFailure = "url" | "network" | "timeout" | "redirect" | "status" | "content_type" | "too_large" | "json";

/** On failure, `description` is a wire-safe phrase about the URL: "answered HTTP 404, not 200". */
export type FetchResult = { ok: true; json: unknown; headers: Headers } | { ok: false; reason: FetchFailure; description: string };

let transport: typeof fetch = (input, init) => fetch(input, init);

/** Tests only: replace the network under safeFetch; call with no argument to restore it. */
export function setOutboundTransport(replacement?: typeof fetch): void {
  transport = replacement ?? ((input, init) => fetch(input, init));
}

/** `application/json` or `application/<anything>+json` (CIMD "Client ID Metadata Document"). */
const JSON_TYPE = /^application\/(?:[a-z0-9!#$&^_.+-]+\+)?json$/;

/**
 * GETs a client-supplied URL and returns its JSON body, refusing: a URL `outboundUrlProblem` refuses;
 * any redirect (CIMD "Client Information Discovery": the AS "MUST NOT automatically follow HTTP
 * redirects"); any status but 200 ("MUST treat all other HTTP status codes as an error"); a content type
 * that is not JSON; more than `maxBytes` of body, counted after the runtime has decompressed it, so a
 * compressed bomb stops at the same cap; and anything not finished, body included, within the deadline.
 */
export async function safeFetch(raw: string, policy: OutboundPolicy, options: { accept: string; maxBytes?: number }): Promise<FetchResult> {
  const problem = outboundUrlProblem(raw, policy);
  if (problem) return { ok: false, reason: "url", description: problem };
  const maxBytes = options.maxBytes ?? MAX_DOCUMENT_BYTES;
  const signal = AbortSignal.timeout(policy.timeoutMs);
  const timeout: FetchResult = { ok: false, reason: "timeout", description: `did not answer within ${policy.timeoutMs} ms` };
  let response: Response;
  try {
    response = await transport(new URL(raw).href, { method: "GET", headers: { Accept: options.accept }, redirect: "manual", signal });
  } catch {
    return signal.aborted ? timeout : { ok: false, reason: "network", description: "could not be fetched" };
  }
  const fail = async (reason: FetchFailure, description: string): Promise<FetchResult> => {
    await response.body?.cancel().catch(() => {});
    return { ok: false, reason, description };
  };
  if (response.status >= 300 && response.status < 400) {
    return fail("redirect", `answered with a redirect (HTTP ${response.status}), which is not followed`);
  }
  if (response.status !== 200) return fail("status", `answered HTTP ${response.status}, not 200`);
  const type = response.headers.get("content-type")?.split(";")[0]?.trim().toLowerCase() ?? "";
  if (!JSON_TYPE.test(type)) return fail("content_type", `is not JSON (Content-Type '${type}')`);
  const read = await readCapped(response, maxBytes, signal);
  if (read === "timeout") return timeout;
  if (read === "too_large") return { ok: false, reason: "too_large", description: `is larger than ${maxBytes} bytes` };
  if (read === "network") return { ok: false, reason: "network", description: "could not be read" };
  try {
    return { ok: true, json: JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(read)), headers: response.headers };
  } catch {
    return { ok: false, reason: "json", description: "is not valid JSON" };
  }
}

/** Reads the body chunk by chunk, giving up (and cancelling the stream) past `maxBytes` or the deadline. */
async function readCapped(response: Response, maxBytes: number, signal: AbortSignal): Promise<Uint8Array | "too_large" | "timeout" | "network"> {
  if (!response.body) return new Uint8Array();
  const reader = response.body.getReader();
  const aborted = new Promise<"timeout">((resolve) => {
    if (signal.aborted) resolve("timeout");
    signal.addEventListener("abort", () => resolve("timeout"), { once: true });
  });
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const next = await Promise.race([reader.read(), aborted]);
      if (next === "timeout") {
        reader.cancel().catch(() => {});
        return "timeout";
      }
      if (next.done) break;
      total += next.value.byteLength;
      if (total > maxBytes) {
        reader.cancel().catch(() => {});
        return "too_large";
      }
      chunks.push(next.value);
    }
  } catch {
    return signal.aborted ? "timeout" : "network";
  }
  const body = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return body;
}
