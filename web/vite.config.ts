import { defineConfig } from 'vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';

// Core serves dist/index.html at `/` and the bundle at `/assets/...`.
// In development, `npm run dev` proxies the API to a core on CORE_URL
// (default http://127.0.0.1:8080), so the app and the API share an origin.
const core = process.env.CORE_URL || 'http://127.0.0.1:8080';
const apiPrefixes = ['/auth', '/me', '/users', '/courses', '/sessions', '/replays', '/tenant', '/audit', '/healthz', '/openapi.json'];

export default defineConfig({
  base: '/',
  plugins: [svelte()],
  build: { outDir: 'dist', emptyOutDir: true, assetsDir: 'assets' },
  server: {
    proxy: Object.fromEntries(apiPrefixes.map((p) => [p, { target: core, changeOrigin: false }])),
  },
  preview: {
    proxy: Object.fromEntries(apiPrefixes.map((p) => [p, { target: core, changeOrigin: false }])),
  },
});
