import type { MiddlewareHandler } from "hono";
import { InvalidRequest, RequestTooLarge } from "../errors";
import type { AppEnv } from "../types";

/** Parameters that may repeat (RFC 8707 §2 `resource`; RFC 8693 §2.1 `audience`). */
const REPEATABLE = new Set(["resource", "audience"]);
const utf8 = new TextDecoder();
/** Largest form body accepted on any endpoint. */
export const MAX_FORM_BYTES = 64 * 1024;

/** Request parameters with OAuth 2.1 §3.1 semantics: empty values are absent, names never repeat. */
export class Params {
  constructor(private readonly search: URLSearchParams) {
    const seen = new Set<string>();
    for (const name of search.keys()) {
      // OAuth 2.1 §3.1: "Request and response parameters MUST NOT be included more than once."
      if (seen.has(name) && !REPEATABLE.has(name)) throw new InvalidRequest(`parameter ${name} is repeated`);
      seen.add(name);
    }
  }

  /** A single-valued parameter; undefined when absent or empty. */
  get(name: string): string | undefined {
    const value = this.search.get(name);
    return value === null || value === "" ? undefined : value;
  }

  /** Every non-empty value of a repeatable parameter. */
  all(name: string): string[] {
    return this.search.getAll(name).filter((v) => v !== "");
  }

  has(name: string): boolean {
    return this.get(name) !== undefined;
  }

  /** These parameters with `name` set to `value` (replacing any value it had). */
  with(name: string, value: string): Params {
    const out = new URLSearchParams(this.search);
    out.set(name, value);
    return new Params(out);
  }

  /** Every parameter except those named, as form parameters again. */
  without(names: readonly string[]): URLSearchParams {
    const out = new URLSearchParams(this.search);
    for (const name of names) out.delete(name);
    return out;
  }
}

/** The media type of a Content-Type field (RFC 9110 §8.3.1): type/subtype, lower case, parameters dropped. */
export function mediaType(contentType: string | undefined): string | undefined {
  return contentType?.split(";")[0]?.trim().toLowerCase();
}

/** Reads the body once as `application/x-www-form-urlencoded` into `c.get("params")`. */
export const formBody: MiddlewareHandler<AppEnv> = async (c, next) => {
  if (mediaType(c.req.header("content-type")) !== "application/x-www-form-urlencoded") {
    throw new InvalidRequest("the request body must be application/x-www-form-urlencoded");
  }
  const length = Number(c.req.header("content-length") ?? 0);
  if (length > MAX_FORM_BYTES) throw new RequestTooLarge("the request body is too large");
  // Read as bytes: the body is form-encoded, not text, and its length is what the cap is about.
  const bytes = await c.req.arrayBuffer();
  if (bytes.byteLength > MAX_FORM_BYTES) throw new RequestTooLarge("the request body is too large");
  const text = utf8.decode(bytes);
  c.set("params", new Params(new URLSearchParams(text)));
  await next();
};

/** Reads query parameters (GET) or the form body (POST) into `c.get("params")`. */
export const queryOrFormBody: MiddlewareHandler<AppEnv> = async (c, next) => {
  if (c.req.method === "POST") return formBody(c, next);
  c.set("params", new Params(new URL(c.req.url).searchParams));
  await next();
};
