/**
 * The reverse process of one image (paper §3.1: x_t from the image at t = 0 toward noise at
 * t = 1): a strip of frames, as many as the user asks for, and a t slider that re-runs the
 * features route at that t and draws the x_t it returns.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { postForm } from '../api';
import type { FeaturesResponse, Model, TrajectoryFramesResponse } from '../types';
import { ErrorMessage, fmt } from '../ui';

export interface SolveSettings {
  solver: string;
  steps: string;
}

function form(image: Blob, s: SolveSettings, extra: Record<string, string>): FormData {
  const f = new FormData();
  f.append('images', image, 'image.png');
  if (s.solver) f.append('solver', s.solver);
  if (s.steps) f.append('steps', s.steps);
  for (const [k, v] of Object.entries(extra)) f.append(k, v);
  return f;
}

/** x_t (C×H×W, x = pixel / 127.5 − 1) as pixels; values outside [−1, 1] are clipped. */
function drawXt(canvas: HTMLCanvasElement, x: number[], [c, h, w]: number[]) {
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext('2d')!;
  const img = ctx.createImageData(w, h);
  const plane = h * w;
  for (let p = 0; p < plane; p++)
    for (let k = 0; k < 3; k++) {
      const v = x[(c === 1 ? 0 : k) * plane + p];
      img.data[4 * p + k] = Math.max(0, Math.min(255, Math.round((v + 1) * 127.5)));
    }
  for (let p = 0; p < plane; p++) img.data[4 * p + 3] = 255;
  ctx.putImageData(img, 0, 0);
}

function stats(x: number[]) {
  const n = x.length;
  const mean = x.reduce((a, b) => a + b, 0) / n;
  const std = Math.sqrt(x.reduce((a, b) => a + (b - mean) ** 2, 0) / n);
  const rms = Math.sqrt(x.reduce((a, b) => a + b * b, 0) / n);
  return { mean, std, rms };
}

export function Trajectory({
  image,
  model,
  settings,
}: {
  image: Blob;
  model: Model;
  settings: SolveSettings;
}) {
  const [frames, setFrames] = useState(8);
  const [strip, setStrip] = useState<TrajectoryFramesResponse | null>(null);
  const [stripError, setStripError] = useState<unknown>(null);
  const [t, setT] = useState(model.solver.tStar);
  const [xt, setXt] = useState<{ t: number; x: number[] } | null>(null);
  const [xtError, setXtError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const canvas = useRef<HTMLCanvasElement>(null);
  const shape = [model.input.channels, model.input.height, model.input.width];

  useEffect(() => {
    let live = true;
    setStripError(null);
    postForm(
      `/models/${encodeURIComponent(model.id)}/trajectory`,
      form(image, settings, { frames: String(frames), format: 'frames' }),
    )
      .then((r) => r.json() as Promise<TrajectoryFramesResponse>)
      .then(
        (r) => live && setStrip(r),
        (e: unknown) => live && setStripError(e),
      );
    return () => {
      live = false;
    };
  }, [image, model.id, settings.solver, settings.steps, frames]);

  // Re-run features whenever t settles (the slider fires on every step while dragged).
  useEffect(() => {
    let live = true;
    const timer = setTimeout(() => {
      setBusy(true);
      setXtError(null);
      postForm(
        `/models/${encodeURIComponent(model.id)}/features`,
        form(image, settings, { t: String(t), format: 'json' }),
      )
        .then((r) => r.json() as Promise<FeaturesResponse>)
        .then(
          (r) => live && setXt({ t: r.t, x: (r.vectors as number[][])[0] }),
          (e: unknown) => live && setXtError(e),
        )
        .finally(() => live && setBusy(false));
    }, 200);
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [image, model.id, settings.solver, settings.steps, t]);

  useEffect(() => {
    if (xt && canvas.current) drawXt(canvas.current, xt.x, shape);
  }, [xt]);

  const s = xt ? stats(xt.x) : null;
  return (
    <div class="trajectory">
      <div class="row">
        <label>
          Frames{' '}
          <input
            type="number"
            min={2}
            max={32}
            value={frames}
            onChange={(e) => {
              const v = Number(e.currentTarget.value);
              if (Number.isInteger(v) && v >= 2) setFrames(v);
            }}
          />
        </label>
      </div>
      <ErrorMessage error={stripError} />
      {strip && (
        <ol
          class="strip"
          aria-label={`Reverse trajectory, ${strip.frames.length} frames from the image (t = 0) to noise (t = 1)`}
        >
          {strip.frames.map((f, i) => (
            <li key={i}>
              <button type="button" class="frame" onClick={() => setT(Math.max(0.01, strip.t[i]))}>
                <img src={`data:image/png;base64,${f}`} alt="" />
                <span>t = {strip.t[i].toFixed(2)}</span>
                <span class="sr-only">: show x_t at this t</span>
              </button>
            </li>
          ))}
        </ol>
      )}
      <div class="xt">
        <label for={`t-${model.id}`}>
          t = <output>{t.toFixed(2)}</output>
        </label>
        <input
          id={`t-${model.id}`}
          type="range"
          min={0.01}
          max={1}
          step={0.01}
          value={t}
          aria-valuetext={`t = ${t.toFixed(2)}`}
          onInput={(e) => setT(Number(e.currentTarget.value))}
        />
        <ErrorMessage error={xtError} />
        <figure>
          <canvas
            ref={canvas}
            class="xt-canvas"
            role="img"
            aria-label={xt ? `x_t at t = ${xt.t}` : 'x_t (loading)'}
          />
          <figcaption aria-live="polite">
            {busy ? (
              'Running features…'
            ) : xt && s ? (
              <>
                x<sub>t</sub> at t = {fmt(xt.t, 3)} ({xt.x.length} values): mean {fmt(s.mean, 3)},
                std {fmt(s.std, 3)}, RMS {fmt(s.rms, 3)}
              </>
            ) : null}
          </figcaption>
        </figure>
      </div>
    </div>
  );
}
