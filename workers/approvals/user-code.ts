/**
 * RFC 8628 §6.1 user codes: 8 characters from 20 consonants (no vowels, so no words; no digits, so
 * no 0/O or 1/I), shown as `BCDF-GHJK`, typed in any case, with or without the dash or spaces.
 * 20^8 ≈ 2.6·10^10 codes; with 5 failed tries per user per 15 minutes (ApprovalQueue.codeAttempt)
 * and codes living 10 minutes, guessing one is hopeless.
 */
export const USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ";
export const USER_CODE_LENGTH = 8;

/** A fresh random user code (normalized form, no dash). Rejection sampling keeps every letter equally likely. */
export function newUserCode(): string {
  let code = "";
  while (code.length < USER_CODE_LENGTH) {
    for (const byte of crypto.getRandomValues(new Uint8Array(16))) {
      // 240 = 12 · 20: bytes at or above it would favour the first letters.
      if (byte < 240 && code.length < USER_CODE_LENGTH) code += USER_CODE_ALPHABET[byte % 20];
    }
  }
  return code;
}

/** What the user typed, normalized; null when it cannot be a user code. */
export function normalizeUserCode(typed: string): string | null {
  const code = typed.toUpperCase().replace(/[\s-]/g, "");
  if (code.length !== USER_CODE_LENGTH) return null;
  for (const ch of code) if (!USER_CODE_ALPHABET.includes(ch)) return null;
  return code;
}

/** `BCDFGHJK` → `BCDF-GHJK`, as shown to people. */
export function displayUserCode(code: string): string {
  return `${code.slice(0, 4)}-${code.slice(4)}`;
}
