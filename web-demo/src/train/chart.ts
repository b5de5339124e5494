/** The live loss and accuracy chart (uPlot): loss on the left axis, accuracy (0–1) on the right. */
import uPlot from 'uplot';

export class LossChart {
  private readonly steps: number[] = [];
  private readonly loss: number[] = [];
  private readonly accuracy: number[] = [];
  private readonly plot: uPlot;

  constructor(parent: HTMLElement) {
    this.plot = new uPlot(
      {
        width: Math.max(320, parent.clientWidth - 8),
        height: 260,
        scales: { x: { time: false }, acc: { range: [0, 1] } },
        axes: [
          { label: 'step' },
          { label: 'loss', scale: 'y' },
          { label: 'accuracy', scale: 'acc', side: 1, grid: { show: false } },
        ],
        series: [
          { label: 'step' },
          { label: 'loss', stroke: '#2f6fed', width: 2, scale: 'y' },
          { label: 'accuracy', stroke: '#16803c', width: 2, scale: 'acc' },
        ],
      },
      [this.steps, this.loss, this.accuracy],
      parent,
    );
    new ResizeObserver(() =>
      this.plot.setSize({ width: Math.max(320, parent.clientWidth - 8), height: 260 }),
    ).observe(parent);
  }

  add(step: number, loss: number, accuracy: number): void {
    this.steps.push(step);
    this.loss.push(loss);
    this.accuracy.push(accuracy);
    this.plot.setData([this.steps, this.loss, this.accuracy]);
  }
}
