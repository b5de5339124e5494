/**
 * The demo's runtime configuration, written by `npm start` to web-demo/dist/config.json and read by the
 * page. Only ICE servers for now: on one machine or one LAN host candidates suffice; across networks
 * the page needs STUN and usually TURN (`ICE_SERVERS='[{"urls":"turn:turn.example:3478",…}]' npm start`).
 */
import { z } from 'zod';

/** An ICE server URL (RFC 7064, RFC 7065): what RTCPeerConnection accepts, checked here at start. */
const IceUrl = z
  .string()
  .regex(/^(stuns?|turns?):[^\s]+$/, 'an ICE server URL starts with stun:, stuns:, turn: or turns:');

export const IceServerSchema = z
  .object({
    urls: z.union([IceUrl, z.array(IceUrl).min(1)], {
      error: 'expected an ICE server URL or a list of them',
    }),
    username: z.string().optional(),
    credential: z.string().optional(),
  })
  .strict()
  .refine(
    (server) =>
      [server.urls].flat().every((url) => !url.startsWith('turn')) ||
      (server.username !== undefined && server.credential !== undefined),
    'a turn: or turns: server needs a username and a credential',
  );

export const DemoConfigSchema = z.object({ iceServers: z.array(IceServerSchema).max(16) }).strict();

export type DemoConfig = z.infer<typeof DemoConfigSchema>;

/** Parses the `ICE_SERVERS` environment value (JSON); throws a readable Error when it is not valid. */
export function iceServersFromEnv(value: string | undefined): DemoConfig['iceServers'] {
  if (!value) return [];
  let json: unknown;
  try {
    json = JSON.parse(value);
  } catch {
    throw new Error('ICE_SERVERS is not JSON: expected e.g. [{"urls":"stun:stun.example.org:3478"}]');
  }
  const parsed = DemoConfigSchema.shape.iceServers.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = (issue?.path ?? [])
      .map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`))
      .join('');
    throw new Error(`ICE_SERVERS${where}: ${issue?.message ?? 'invalid'}`);
  }
  return parsed.data;
}
