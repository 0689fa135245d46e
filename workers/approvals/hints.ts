import type { Client } from "../../schemas/client";
import type { User } from "../../schemas/resource";
import { registry } from "../clients/cache";
import type { Config } from "../config";
import { InvalidRequest, UnknownUserId } from "../errors";
import { grantStub } from "../grants/issue";
import type { Params } from "../middleware/form-body";
import { verifyAccessToken } from "../tokens/access-token";
import { parseHandle } from "../tokens/handles";
import { idTokenHintSubject } from "../tokens/id-token";

/**
 * CIBA Core §7.1: "exactly one" of `login_hint_token`, `id_token_hint` and `login_hint` names the user.
 * - `login_hint`: the email of a local user;
 * - `id_token_hint`: an ID token this server issued to this client, verified with our keys; it may
 *   have expired (CIBA §7.1 allows it: the user is away, the token is old);
 * - `login_hint_token`: not supported (no format is defined for it here); refused with invalid_request.
 * An unknown user is `unknown_user_id` (CIBA §13).
 */
export async function resolveUser(env: Env, cfg: Config, client: Client, params: Params, now: number): Promise<User> {
  const given = (["login_hint_token", "id_token_hint", "login_hint"] as const).filter((h) => params.has(h));
  if (given.length !== 1) throw new InvalidRequest("exactly one of login_hint, id_token_hint and login_hint_token is required");
  if (given[0] === "login_hint_token") throw new InvalidRequest("login_hint_token is not supported; use login_hint or id_token_hint");
  const reg = registry(env);
  if (given[0] === "login_hint") {
    const user = await reg.getUserByEmail((params.get("login_hint") as string).trim().toLowerCase());
    if (!user) throw new UnknownUserId("login_hint does not identify a user of this server");
    return user;
  }
  const sub = await idTokenHintSubject(env, cfg, client.client_id, params.get("id_token_hint") as string, now);
  const user = await reg.getUser(sub);
  if (!user) throw new UnknownUserId("id_token_hint does not identify a user of this server");
  return user;
}

/**
 * Step-up (README "Asking for more access"): `grant_token` names the grant a request extends, by a
 * refresh token or an unexpired access token of it. It must belong to this client and this user, and
 * the grant must be active. Returns the GrantObject id.
 */
export async function grantToExtend(env: Env, cfg: Config, client: Client, user: User, token: string, now: number): Promise<string> {
  const refresh = await parseHandle("refresh", token);
  let grantId: string | undefined;
  let jti: string | undefined;
  if (refresh) grantId = refresh.object_id;
  else {
    const claims = await verifyAccessToken(env, cfg, token, now);
    grantId = claims?.client_id === client.client_id ? claims.gid : undefined;
    jti = claims?.jti;
  }
  const stub = grantId ? grantStub(env, grantId) : null;
  const status = stub ? await stub.status({ now, ...(refresh ? { refresh_hash: refresh.hash } : { jti }) }) : { active: false as const };
  if (!status.active || status.data.client_id !== client.client_id || status.data.sub !== user.id || !grantId) {
    throw new InvalidRequest("grant_token does not name an active grant of this client for this user");
  }
  return grantId;
}
