import { floorToken } from "./floor-token";

/**
 * What the client-credentials floor (bench/workers/sign-floor.ts at `/client`) accepts: one client,
 * authenticated with `client_secret_basic` against the SHA-256 of its secret, as Latchkey stores it.
 * bench/scenarios.mjs (`client_floor`) sends these credentials.
 */
const FLOOR_CLIENT = { id: "floor_client", secret: "floor-client-secret-0123456789abcdef" };
const RESOURCE = "http://localhost:8788/mcp";
const SCOPES = new Set(["mcp:read", "mcp:write"]);

const encoder = new TextEncoder();
const digest = async (s: string) => new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(s)));
let stored: Promise<Uint8Array> | undefined;

const refuse = (status: number, error: string) => Response.json({ error }, { status, headers: { "Cache-Control": "no-store" } });

/** The headers Latchkey puts on a token response: no caching, the security headers, CORS. */
const HEADERS: Array<[string, string]> = [
  ["Pragma", "no-cache"],
  ["X-Content-Type-Options", "nosniff"],
  ["Referrer-Policy", "no-referrer"],
  ["X-Frame-Options", "DENY"],
  ["Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"],
  ["Access-Control-Allow-Origin", "*"],
];

/**
 * Control, the client-credentials floor: only what every `client_credentials` request must do, in a
 * bare fetch handler: read the form, authenticate the client (Basic, one SHA-256, a constant-time
 * compare), check the scope and resource, sign one ES256 JWT (`floor-token.ts`), answer JSON with the
 * token response's headers. No router, no middleware, no rate limit, no audit.
 */
export async function clientFloor(request: Request): Promise<Response> {
  const form = new URLSearchParams(await request.text());
  if (form.get("grant_type") !== "client_credentials") return refuse(400, "unsupported_grant_type");
  const basic = request.headers.get("Authorization")?.match(/^Basic (.+)$/)?.[1];
  const [id, secret] = basic ? atob(basic).split(":").map(decodeURIComponent) : [];
  stored ??= digest(FLOOR_CLIENT.secret);
  const presented = await digest(secret ?? "");
  if (id !== FLOOR_CLIENT.id || !crypto.subtle.timingSafeEqual(presented, await stored)) return refuse(401, "invalid_client");
  const scope = form.get("scope")?.split(" ") ?? [];
  if (!scope.every((s) => SCOPES.has(s))) return refuse(400, "invalid_scope");
  if (form.get("resource") !== RESOURCE) return refuse(400, "invalid_target");
  const response = await floorToken();
  for (const [name, value] of HEADERS) response.headers.set(name, value);
  return response;
}
