/**
 * The web dashboard (web/, built by `npm run build` into dist/web) served at `/` by Nest's static
 * module. The page routes with the URL hash (#/try, #/fine-tunes/<id>), so the server never has
 * to answer other paths with index.html: only `/` and the files under dist/web are served, and
 * every other path (the API's routes, /v2, typos) reaches the API's router and its JSON 404.
 * The static handler is registered when the module initialises, after the controllers' routes,
 * so a file can never shadow an API route either.
 */
import { Controller, DynamicModule, Get, HttpStatus, Inject, Logger, Module } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import { ServeStaticModule } from '@nestjs/serve-static';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import type { ServerResponse } from 'node:http';
import { ApiError } from '../common/errors';

/** Vite names every built asset by its content hash (web/vite.config.ts: build.assetsDir). */
export const HASHED_ASSETS_DIR = 'assets';

/** Hashed files never change under their name; everything else (index.html) is revalidated. */
export function cacheControlFor(root: string, file: string): string {
  const rel = path.relative(root, file).split(path.sep);
  return rel.length > 1 && rel[0] === HASHED_ASSETS_DIR
    ? 'public, max-age=31536000, immutable'
    : 'no-cache';
}

/** WEB_DIR, else dist/web of the package this file belongs to (from src/ or dist/src/ alike). */
export function dashboardDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.WEB_DIR) return path.resolve(env.WEB_DIR);
  let dir = __dirname;
  while (!existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir)
    dir = path.dirname(dir);
  return path.join(dir, 'dist', 'web');
}

const DASHBOARD_DIR = Symbol('DASHBOARD_DIR');

/** Answers `/` when the dashboard was not built, so the 404 says why. */
@ApiExcludeController()
@Controller()
class DashboardMissingController {
  constructor(@Inject(DASHBOARD_DIR) private readonly dir: string) {
    // Here, not in forRoot: the app's logger settings apply once Nest builds the module.
    new Logger('Dashboard').warn(`not built: no ${path.join(dir, 'index.html')} (npm run build)`);
  }

  @Get()
  index(): never {
    throw new ApiError(
      HttpStatus.NOT_FOUND,
      'NOT_FOUND',
      `the dashboard is not built (no ${path.join(this.dir, 'index.html')}): run npm run build`,
    );
  }
}

@Module({})
export class DashboardModule {
  static forRoot(dir: string = dashboardDir()): DynamicModule {
    if (!existsSync(path.join(dir, 'index.html'))) {
      return {
        module: DashboardModule,
        controllers: [DashboardMissingController],
        providers: [{ provide: DASHBOARD_DIR, useValue: dir }],
      };
    }
    return {
      module: DashboardModule,
      imports: [
        ServeStaticModule.forRoot({
          rootPath: dir,
          // Only `/` renders index.html; the default ('{*any}') would answer every unknown GET.
          renderPath: '/',
          serveStaticOptions: {
            index: false,
            dotfiles: 'ignore',
            setHeaders: (res: ServerResponse, file: string) =>
              res.setHeader('Cache-Control', cacheControlFor(dir, file)),
          },
        }),
      ],
    };
  }
}
