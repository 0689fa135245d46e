import { Hono } from "hono";
import { now } from "../clock";
import { methodNotAllowed } from "../middleware/method";
import { publishedJwks } from "../tokens/keys";
import type { AppEnv } from "../types";

/** RFC 7517 JWK Set at `jwks_uri`: from isolate memory, cacheable until the next key change. */
export const jwks = new Hono<AppEnv>();

jwks.get("/jwks", async (c) => {
  const { body, max_age } = await publishedJwks(c.env, now());
  return c.body(body, 200, { "Content-Type": "application/jwk-set+json", "Cache-Control": `public, max-age=${max_age}` });
});
jwks.all("/jwks", methodNotAllowed("GET"));
