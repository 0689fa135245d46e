import type { Context } from "hono";
import type { AttestationPolicy, AttestedFacts } from "../../schemas/attestation";
import type { Resource } from "../../schemas/resource";
import { versionAtLeast } from "../attestation/eat";
import { Forbidden } from "../errors";
import { audit } from "../observe/audit";
import type { AppEnv } from "../types";

/** What attestation policy allows for one token: its longest lifetime, and the facts it carries. */
export interface AttestationOutcome {
  /** Seconds; set when an unattested client is limited by `unattested_max_token_lifetime`. */
  max_lifetime?: number;
  /** The verified facts about the client instance, for the token's `attested` claim. */
  attested?: AttestedFacts;
}

/**
 * Evaluates the attestation policies that apply to a token request (or a pushed authorization
 * request): the client's own and that of every resource involved; all must hold. Reads only the
 * cached client and resource records, so it adds no binding call. A refusal is `403 access_denied`
 * naming what was missing (an attestation, or which attested claim), never the accepted values, and
 * is recorded as a `policy.denied` audit event.
 */
export function enforceAttestationPolicy(c: Context<AppEnv>, input: { scope: readonly string[]; resources: readonly (Resource | null)[] }): AttestationOutcome {
  const facts = c.get("attestation")?.facts;
  const clientPolicy = c.get("client").attestation_policy;
  // The common case, no policy and no attestation: nothing to evaluate or carry.
  if (!facts && !clientPolicy && input.resources.every((r) => !r?.attestation_policy)) return {};
  const policies = [clientPolicy, ...input.resources.map((r) => r?.attestation_policy)].filter((p): p is AttestationPolicy => !!p);
  const deny = (description: string, detail: string): never => {
    audit(c, { event: "policy.denied", outcome: "failure", client_id: c.get("client").client_id, detail });
    throw new Forbidden(description, detail);
  };
  let max: number | undefined;
  for (const policy of policies) {
    if (!facts) {
      const needed = requiredFor(policy, input.scope);
      if (needed === true) deny("client attestation is required for this request", "attestation missing");
      if (typeof needed === "string") deny(`client attestation is required for scope ${needed}`, `attestation missing for ${needed}`);
      if (policy.unattested_max_token_lifetime !== undefined) max = Math.min(max ?? Infinity, policy.unattested_max_token_lifetime);
      continue;
    }
    const problem = unmet(policy, facts);
    if (problem) deny(`the client attestation does not satisfy the policy for this request: ${problem}`, `attested ${problem}`);
  }
  return { ...(max !== undefined ? { max_lifetime: max } : {}), ...(facts ? { attested: facts } : {}) };
}

/**
 * The part of attestation policy that no grant's scope or audience can change: a policy of the client or
 * of a resource the request names that requires attestation for every token, or that the presented
 * attestation does not satisfy. A token request that spends something (a code, a refresh token) checks
 * this before it does, so such a refusal spends nothing; the full check follows when the token is minted.
 */
export function enforceGrantIndependentPolicy(c: Context<AppEnv>, named: readonly (Resource | null)[]): void {
  const facts = c.get("attestation")?.facts;
  const refuses = (p?: AttestationPolicy) => !!p && (facts ? unmet(p, facts) !== null : p.require_attestation === true);
  if (refuses(c.get("client").attestation_policy) || named.some((r) => refuses(r?.attestation_policy))) {
    enforceAttestationPolicy(c, { scope: [], resources: named });
  }
}

/** `true` when every token needs attestation, the first requested scope that does, or null. */
function requiredFor(policy: AttestationPolicy, scope: readonly string[]): true | string | null {
  const required = policy.require_attestation;
  if (required === true) return true;
  if (Array.isArray(required)) return scope.find((s) => required.includes(s)) ?? null;
  return null;
}

/** The first attested fact the policy does not accept, named as a wire-safe phrase; null when all hold. */
function unmet(policy: AttestationPolicy, facts: AttestedFacts): string | null {
  const lists: Array<[string[] | undefined, string | undefined, string]> = [
    [policy.attesters, facts.iss, "attester"],
    [policy.model_providers, facts.model_provider, "model_provider"],
    [policy.models, facts.model, "model"],
    [policy.runtimes, facts.runtime, "runtime"],
    [policy.swnames, facts.swname, "swname"],
    [policy.dbgstat, facts.dbgstat, "dbgstat"],
  ];
  for (const [accepted, value, name] of lists) {
    if (accepted && value === undefined) return `${name} missing`;
    if (accepted && value !== undefined && !accepted.includes(value)) return `${name} not accepted`;
  }
  if (policy.min_swversion !== undefined && (facts.swversion === undefined || !versionAtLeast(facts.swversion, policy.min_swversion))) {
    return facts.swversion === undefined ? "swversion missing" : "swversion too old";
  }
  return null;
}
