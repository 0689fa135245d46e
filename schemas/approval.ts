import type { AttestedFacts } from "./attestation";

/**
 * An asynchronous approval request: a CIBA backchannel authentication request (OpenID CIBA Core 1.0)
 * or a device authorization request (RFC 8628), waiting in an ApprovalQueue for a user's decision.
 */
export interface ApprovalRequest {
  /** Public id of the request, used by the inbox forms (not a credential). */
  id: string;
  kind: "ciba" | "device";
  /** base64url SHA-256 of the `auth_req_id` (CIBA §7.3) or `device_code` (RFC 8628 §3.2) handle. */
  handle_hash: string;
  client_id: string;
  /** Shown to the user: the client's registered name, else its id. */
  client_name: string;
  /** The client registered itself (dynamic or pushed registration, a metadata document): its name is its own claim. */
  self_registered?: true;
  /** CIBA: the user the request is for (OIDC `sub`). Device requests learn theirs when approved. */
  sub?: string;
  /** Scopes asked for (RFC 6749 §3.3), already checked by policy. */
  scope: string[];
  /** RFC 8707 resources, already checked by policy. */
  resources: string[];
  /** CIBA §7.1 `binding_message`, shown on both devices. */
  binding_message?: string;
  /** RFC 8628 §3.2 `user_code` as the user types it (normalized, without the dash). */
  user_code?: string;
  /** Step-up: the GrantObject (hex id) this request extends instead of creating a grant. */
  extends_grant?: string;
  /**
   * Push mode: what attestation policy allowed when the client asked (its facts, a shorter lifetime),
   * since the tokens are minted at delivery, with no request of the client's to evaluate.
   */
  attestation?: { max_lifetime?: number; attested?: AttestedFacts };
  /** CIBA §5 token delivery mode; device requests are always polled. */
  delivery: "poll" | "ping" | "push";
  /** Ping and push: where and with which bearer token to call back, and the id to name. */
  notification?: { endpoint: string; token: string; auth_req_id: string };
  created_at: number;
  expires_at: number;
  /** Least seconds between two polls; grows by 5 on every `slow_down` (RFC 8628 §3.5). */
  interval: number;
}

/** The state of a request in its queue (see the diagram in `durable-objects/approval-queue.ts`). */
export type ApprovalState = "pending" | "approved" | "denied" | "expired" | "redeemed";

/** Who approved, and how they had authenticated (OIDC `auth_time`, RFC 8176 `amr`). */
export interface Approval {
  sub: string;
  auth_time: number;
  amr: string[];
}

/** What the inbox shows of a pending request. */
export interface ApprovalView {
  id: string;
  kind: ApprovalRequest["kind"];
  client_name: string;
  client_id: string;
  scope: string[];
  resources: string[];
  binding_message?: string;
  step_up: boolean;
  /** Shown with a warning: nobody vouched for the client. */
  self_registered: boolean;
  expires_at: number;
}

/** A Web Push subscription (W3C Push API `PushSubscription.toJSON()`), kept per user. */
export interface PushSubscriptionRecord {
  endpoint: string;
  keys: { p256dh: string; auth: string };
  created_at: number;
}
