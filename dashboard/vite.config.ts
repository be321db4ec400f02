import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

/**
 * The dashboard is served by opsgraph at /ui (from dist/). `npm run dev:dashboard` runs Vite with
 * hot reload and forwards /graphql (HTTP, SSE and WebSocket) to a running server: OPSGRAPH_URL,
 * default http://localhost:4000.
 */
const target = process.env.OPSGRAPH_URL ?? 'http://localhost:4000';

export default defineConfig({
  base: '/ui/',
  plugins: [react()],
  build: { outDir: 'dist', emptyOutDir: true, sourcemap: false, chunkSizeWarningLimit: 600 },
  server: {
    port: Number(process.env.DASHBOARD_PORT ?? 5173),
    proxy: { '/graphql': { target, ws: true, changeOrigin: true } },
  },
});
