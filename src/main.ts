import { startApp } from './app.ts';
import { ConfigError, loadConfig, usesDevelopmentSecret } from './config.ts';
import { createLogger } from './logger.ts';

let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig();
} catch (error) {
  if (error instanceof ConfigError) {
    process.stderr.write(`opsgraph: ${error.message}\n`);
    process.exit(2);
  }
  throw error;
}

const logger = createLogger({
  level: config.logLevel,
  bindings: { instance: config.instanceId.slice(0, 8), role: config.role },
});
if (usesDevelopmentSecret(config)) logger.warn('JWT_SECRET is not set: using the development secret');

const app = await startApp(config, { logger }).catch((err: Error) => {
  logger.error('failed to start', { err });
  process.exit(1);
});

// One line on stdout that scripts and tests wait for.
process.stdout.write(
  app.url
    ? `opsgraph ready: ${app.url} (role ${config.role})\n`
    : `opsgraph ready: worker (role ${config.role})\n`,
);

let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    logger.info('draining', { signal });
    app.close().then(
      () => process.exit(0),
      (err: Error) => {
        logger.error('shutdown failed', { err });
        process.exit(1);
      },
    );
  });
}
