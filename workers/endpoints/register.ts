import { Hono } from "hono";
import { MAX_REGISTRATION_BYTES } from "../clients/metadata";
import { registerClient } from "../clients/register";
import { Forbidden, InvalidClientMetadata } from "../errors";
import { noStore } from "../middleware/headers";
import { methodNotAllowed } from "../middleware/method";
import type { AppEnv } from "../types";

/** RFC 7591 §3 dynamic client registration: JSON metadata in, 201 with the client information out. */
export const register = new Hono<AppEnv>();

register.post("/register", noStore, async (c) => {
  if (c.var.cfg.REGISTRATION_POLICY === "closed") throw new Forbidden("dynamic client registration is closed on this server");
  if (!c.req.header("content-type")?.toLowerCase().startsWith("application/json")) {
    throw new InvalidClientMetadata("the registration request must be application/json");
  }
  const text = await c.req.text();
  if (text.length > MAX_REGISTRATION_BYTES) throw new InvalidClientMetadata("the registration request is too large");
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new InvalidClientMetadata("the registration request is not valid JSON");
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw new InvalidClientMetadata("the registration request must be a JSON object");
  return c.json(await registerClient(c.env, body, "dynamic_registration"), 201);
});
register.all("/register", methodNotAllowed("POST"));
