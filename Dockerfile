# syntax=docker/dockerfile:1
# Build: install everything (the `node` devDependency brings its own Node 24 for npm scripts),
# compile src/ to dist/, then drop the dev dependencies.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

# Run: distroless Node 24, no shell, no package manager, as the nonroot user.
FROM gcr.io/distroless/nodejs24-debian12:nonroot
WORKDIR /app
ENV HOST=0.0.0.0 \
    PORT=8080 \
    METRICS_PORT=9464 \
    PROVIDERS=live \
    TRUST_PROXY=true
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
EXPOSE 8080 9464
# The image's entrypoint is node itself, so node is PID 1 and receives SIGTERM (never npm start).
# The same command line as `npm run start:prod`; test/deploy/manifests.test.ts keeps them equal.
CMD ["--import", "./dist/telemetry.js", "dist/server.js"]
