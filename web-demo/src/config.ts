/**
 * The demo's runtime configuration, written by `npm start` to web-demo/dist/config.json and read by the
 * page. Only ICE servers for now: on one machine or one LAN host candidates suffice; across networks
 * the page needs STUN and usually TURN (`ICE_SERVERS='[{"urls":"turn:turn.example:3478",…}]' npm start`).
 */
import { z } from 'zod';

export const IceServerSchema = z
  .object({
    urls: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
    username: z.string().optional(),
    credential: z.string().optional(),
  })
  .strict();

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
  if (!parsed.success) throw new Error(`ICE_SERVERS: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  return parsed.data;
}
