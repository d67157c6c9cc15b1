// bhyve's listen address forms for fbuf's rfb=/tcp= (bhyve_config(5)).
import test from 'tape';
import { parseRfbAddress, RfbAddressError } from '../../../devices/fbuf/rfb/address.js';

test('IPv4:port, [IPv6%zone]:port and a bare port (on 127.0.0.1)', (t) => {
  t.deepEqual(parseRfbAddress('0.0.0.0:5901'), { host: '0.0.0.0', port: 5901 });
  t.deepEqual(parseRfbAddress('[::1]:5900'), { host: '::1', port: 5900 });
  t.deepEqual(parseRfbAddress('[fe80::1%em0]:5902'), { host: 'fe80::1%em0', port: 5902 });
  t.deepEqual(parseRfbAddress('5903'), { host: '127.0.0.1', port: 5903 });
  t.deepEqual(parseRfbAddress('localhost:0'), { host: 'localhost', port: 0 });
  t.end();
});

test('malformed addresses are typed errors', (t) => {
  for (const bad of ['', ':5900', '::1:5900', '1.2.3.4:', '1.2.3.4:65536', '1.2.3.4:59x0', '[::1]', '[::1]:', 'abc']) {
    t.throws(() => parseRfbAddress(bad), RfbAddressError, JSON.stringify(bad));
  }
  t.end();
});
