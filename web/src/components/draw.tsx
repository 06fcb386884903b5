/**
 * A drawing canvas for 1-channel models: white strokes on black, like MNIST digits. The server
 * resizes whatever it gets to the model's input, so the canvas can be any size.
 */
import { useEffect, useRef } from 'preact/hooks';

const SIZE = 280;

export function DrawingCanvas({ onDone }: { onDone: (png: Blob) => void }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const drawing = useRef(false);
  const clear = () => {
    const ctx = canvas.current!.getContext('2d')!;
    ctx.fillStyle = '#000';
    ctx.fillRect(0, 0, SIZE, SIZE);
  };
  useEffect(clear, []);
  const point = (e: PointerEvent) => {
    const r = canvas.current!.getBoundingClientRect();
    return [((e.clientX - r.left) * SIZE) / r.width, ((e.clientY - r.top) * SIZE) / r.height];
  };
  const down = (e: PointerEvent) => {
    drawing.current = true;
    canvas.current!.setPointerCapture(e.pointerId);
    const ctx = canvas.current!.getContext('2d')!;
    const [x, y] = point(e);
    ctx.beginPath();
    ctx.moveTo(x, y);
    move(e);
  };
  const move = (e: PointerEvent) => {
    if (!drawing.current) return;
    const ctx = canvas.current!.getContext('2d')!;
    const [x, y] = point(e);
    ctx.strokeStyle = '#fff';
    ctx.lineWidth = 22;
    ctx.lineCap = 'round';
    ctx.lineJoin = 'round';
    ctx.lineTo(x, y);
    ctx.stroke();
  };
  const up = () => (drawing.current = false);
  return (
    <div class="draw">
      <canvas
        ref={canvas}
        width={SIZE}
        height={SIZE}
        role="img"
        aria-label="Drawing area: draw with a mouse, pen or finger, white on black"
        onPointerDown={down}
        onPointerMove={move}
        onPointerUp={up}
        onPointerCancel={up}
      />
      <div class="row">
        <button
          type="button"
          onClick={() => canvas.current!.toBlob((b) => b && onDone(b), 'image/png')}
        >
          Classify drawing
        </button>
        <button type="button" class="secondary" onClick={clear}>
          Clear drawing
        </button>
      </div>
    </div>
  );
}
