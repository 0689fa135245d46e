import type { Approval, ApprovalRequest, ApprovalState, ApprovalView } from "../schemas/approval";

/** The storage key of a request in its ApprovalQueue. */
export const reqKey = (id: string) => `req:${id}`;

/** A request as an ApprovalQueue stores it: the request, its state, and the bookkeeping of its transitions. */
export interface Stored extends ApprovalRequest {
  state: ApprovalState;
  /** Arrival order in this queue (several requests can share a second). */
  seq: number;
  last_polled_at?: number;
  decided_at?: number;
  approval?: Approval;
}

/** What the inbox shows of a request. */
export function view(r: Stored): ApprovalView {
  return {
    id: r.id,
    kind: r.kind,
    client_name: r.client_name,
    client_id: r.client_id,
    scope: r.scope,
    resources: r.resources,
    ...(r.binding_message !== undefined ? { binding_message: r.binding_message } : {}),
    step_up: r.extends_grant !== undefined,
    self_registered: r.self_registered === true,
    expires_at: r.expires_at,
  };
}

/** The request without its state bookkeeping. */
export function strip(r: Stored): ApprovalRequest {
  const { state: _s, seq: _q, last_polled_at: _p, decided_at: _d, approval: _a, ...request } = r;
  return request;
}
