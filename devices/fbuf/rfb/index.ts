// The VNC (RFB, RFC 6143) server of the fbuf device: what the device and its tests import.
export { RfbServer, type RfbServerOptions, type RfbServerStats } from './server.js';
export type { RfbConnection } from './connection.js';
export { DEFAULT_RFB_HOST, DEFAULT_RFB_PORT, type ListenAddress } from './address.js';
export { type FramebufferSource, type Rect, FramebufferError } from './framebuffer.js';
export { RfbProtocolError, type RfbErrorCode } from './errors.js';
export { ENCODING_RAW, ENCODING_ZLIB, ENCODING_ZRLE, ENCODING_DESKTOP_SIZE, SUPPORTED_ENCODINGS } from './encodings.js';
export { NATIVE_PIXEL_FORMAT, type PixelFormat } from './pixel-format.js';
export { TileScanner, type DirtyScanner } from './tiles.js';
