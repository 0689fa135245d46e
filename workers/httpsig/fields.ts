import { type BareItem, isInnerList, type Parameters, ParseError, parseDictionary, serializeInnerList } from "structured-headers";

/**
 * RFC 9421 fields: reading `Signature-Input` and `Signature`, and building the signature base.
 * Parsing is RFC 9651 structured fields by the `structured-headers` package (pure JavaScript, no Node
 * built-ins, runs on Workers); what is written here is only what RFC 9421 §2 and §2.5 define on top.
 */

/** One signature from the request: its label, what it covers, its parameters and its bytes. */
export interface SignatureEntry {
  /** The Dictionary key shared by `Signature-Input` and `Signature` (RFC 9421 §4.1). */
  label: string;
  /** Covered component identifiers, in order, without parameters (we accept none). */
  components: string[];
  /** RFC 9421 §2.3 signature parameters (`created`, `expires`, `nonce`, `keyid`, `tag`, `alg`). */
  params: Parameters;
  /** The `@signature-params` value: the inner list as RFC 9651 serializes it. */
  signatureParams: string;
  /** The signature bytes from the `Signature` field. */
  signature: Uint8Array;
}

export type Read<T> = { ok: true; value: T } | { ok: false; description: string };

/**
 * The signatures carrying `tag`, read from the request's `Signature-Input` and `Signature` fields.
 * Signatures with other tags are someone else's (the draft: "The request MAY include multiple
 * signatures to serve different needs") and are ignored.
 */
export function signaturesTagged(headers: Headers, tag: string): Read<SignatureEntry[]> {
  const input = headers.get("signature-input");
  const sigs = headers.get("signature");
  if (input === null) return { ok: false, description: `an HTTP message signature tagged ${tag} is required (Signature-Input is missing)` };
  let inputs: ReturnType<typeof parseDictionary>;
  let values: ReturnType<typeof parseDictionary>;
  try {
    // RFC 9421 §4.1: "The Signature-Input field is a Dictionary Structured Field"; §4.2 the same for Signature.
    inputs = parseDictionary(input);
    values = parseDictionary(sigs ?? "");
  } catch (error) {
    if (error instanceof ParseError) return { ok: false, description: "Signature-Input or Signature is not a valid structured field dictionary (RFC 9651)" };
    throw error;
  }
  const out: SignatureEntry[] = [];
  for (const [label, member] of inputs) {
    if (!isInnerList(member)) return { ok: false, description: `Signature-Input member ${label} must be an inner list` };
    const [items, params] = member;
    if (params.get("tag") !== tag) continue;
    const components: string[] = [];
    for (const [item, itemParams] of items) {
      if (typeof item !== "string") return { ok: false, description: `Signature-Input ${label}: component identifiers must be strings` };
      if (itemParams.size > 0) return { ok: false, description: `Signature-Input ${label}: component parameters (${item};…) are not supported` };
      // RFC 9421 §2.1: "The component name for an HTTP field is the lowercased form of its field name".
      if (item !== item.toLowerCase()) return { ok: false, description: `Signature-Input ${label}: component ${item} must be lowercase` };
      // RFC 9421 §2: "Component identifiers ... MUST NOT be repeated within a single list of covered components."
      if (components.includes(item)) return { ok: false, description: `Signature-Input ${label}: component ${item} is repeated` };
      components.push(item);
    }
    const value = values.get(label);
    // RFC 9421 §4.2: the signature value is a Byte Sequence under the same label.
    if (value === undefined || isInnerList(value) || !(value[0] instanceof ArrayBuffer)) {
      return { ok: false, description: `the Signature field must carry a byte sequence labelled ${label}` };
    }
    out.push({ label, components, params, signatureParams: serializeInnerList(member), signature: new Uint8Array(value[0]) });
  }
  if (!out.length) return { ok: false, description: `an HTTP message signature tagged ${tag} is required` };
  return { ok: true, value: out };
}

/** What a covered component resolves to, or undefined when the message lacks it. */
export type Resolve = (component: string) => string | undefined;

/**
 * RFC 9421 §2.2 derived components from the target URI the verifier trusts (its configured origin, never
 * the Host header), and §2.1 HTTP fields from the request's headers.
 */
export function resolver(method: string, targetUri: URL, headers: Headers): Resolve {
  return (component) => {
    switch (component) {
      // §2.2.1: "no transformation to the input method value's case is performed".
      case "@method":
        return method;
      case "@target-uri":
        return targetUri.href;
      case "@authority":
        return targetUri.host;
      case "@scheme":
        return targetUri.protocol.slice(0, -1);
      case "@path":
        return targetUri.pathname;
      case "@query":
        return targetUri.search || "?";
      default:
        // Other derived components (@request-target, @query-param, @status) are not supported.
        if (component.startsWith("@")) return undefined;
        // §2.1: values combined with ", " after trimming; Headers.get already does both.
        return headers.get(component) ?? undefined;
    }
  };
}

/**
 * RFC 9421 §2.5 signature base: one line `"<identifier>": <value>` per covered component, in order,
 * then `"@signature-params": <inner list>`, lines joined by a single LF with none at the end.
 */
export function signatureBase(entry: Pick<SignatureEntry, "components" | "signatureParams">, resolve: Resolve): Read<string> {
  const lines: string[] = [];
  for (const component of entry.components) {
    const value = resolve(component);
    // §2.5: a component that "cannot be resolved to a component value in the message" is an error.
    if (value === undefined) return { ok: false, description: `the covered component ${component} is not in the request or not supported` };
    if (/[\r\n]/.test(value)) return { ok: false, description: `the covered component ${component} has a line break` };
    lines.push(`"${component}": ${value}`);
  }
  lines.push(`"@signature-params": ${entry.signatureParams}`);
  return { ok: true, value: lines.join("\n") };
}

/** A signature parameter of the expected type, or undefined. */
export function param<T extends "string" | "number">(params: Parameters, name: string, type: T): (T extends "string" ? string : number) | undefined {
  const value: BareItem | undefined = params.get(name);
  return (typeof value === type ? value : undefined) as (T extends "string" ? string : number) | undefined;
}
