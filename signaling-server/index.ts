export type { Directory, DirectoryEntry } from './directory.js';
export { SignalingMetrics } from './metrics.js';
export {
  type SignalingLimits,
  type SignalingServerHandle,
  type SignalingServerOptions,
  startSignalingServer,
} from './server.js';
