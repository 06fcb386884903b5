# PRG server image: the API (default command) and the fine-tune worker (`node dist/src/server/worker.js`)
# share it. CPU by default; for GPU, run on a CUDA base image with the CUDA 12 / cuDNN 9 libraries
# onnxruntime-node's CUDA execution provider needs, and set PRG_DEVICE=cuda (it falls back to CPU
# with a warning when the libraries are missing).
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY bench ./bench
COPY bin ./bin
COPY web ./web
COPY docs/examples ./docs/examples
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production PORT=3000 MODELS_DIR=/app/models DATA_DIR=/data/datasets
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
COPY models ./models
RUN mkdir -p /data && chown -R node:node /data /app/models
USER node
EXPOSE 3000
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/health/live').then(r=>process.exit(r.ok?0:1)).catch(()=>process.exit(1))"
CMD ["node", "dist/src/server/main.js"]
