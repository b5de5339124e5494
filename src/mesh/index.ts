export type { Compression } from './codec.js';
export {
  type AllReduceOptions,
  type BroadcastResult,
  type CollectiveOptions,
  joinMesh,
  Mesh,
  MeshCloseCode,
  type MeshEvents,
  type MeshHost,
  type MeshOptions,
  type MeshPeerStats,
} from './mesh.js';
export type { MeshFrame } from './wire.js';
