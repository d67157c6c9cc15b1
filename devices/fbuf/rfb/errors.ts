// Typed reasons for dropping a client. A protocol error ends that one connection; the server and the other
// clients go on.

export type RfbErrorCode =
  | 'bad-version'
  | 'bad-security-type'
  | 'auth-failed'
  | 'unknown-message'
  | 'bad-pixel-format'
  | 'too-many-encodings'
  | 'cut-text-too-long'
  | 'handshake-timeout'
  | 'input-overflow'
  | 'resize-unsupported';

export class RfbProtocolError extends Error {
  override readonly name = 'RfbProtocolError';
  constructor(
    readonly code: RfbErrorCode,
    message: string,
  ) {
    super(message);
  }
}
