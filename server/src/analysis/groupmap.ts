// Downsampled group-error map of one layer × format for the heatmap view: the [out, in] view cut into
// rows × scale groups, merged into at most mapSize × mapSize cells. Cell (i, j) covers output channels
// i·rowsPerCell … (i+1)·rowsPerCell − 1 and groups j·groupsPerCell … of each of them; its value is the mean
// squared error (w − Q(w))² over the weights it covers. Columns are positions in the stored layout, also for
// formats that permute columns before grouping (+reorder).
import type { GroupMap } from './types';

const round4 = (x: number) => Number(x.toPrecision(4));

export class GroupMapAcc {
  readonly rowsPerCell: number;
  readonly groupsPerCell: number;
  readonly cellRows: number;
  readonly cellCols: number;
  private readonly sum: Float64Array;
  private readonly count: Float64Array;

  constructor(
    rows: number,
    private readonly cols: number,
    private readonly groupSize: number,
    mapSize: number,
  ) {
    const groups = Math.ceil(cols / groupSize);
    this.rowsPerCell = Math.max(1, Math.ceil(rows / mapSize));
    this.groupsPerCell = Math.max(1, Math.ceil(groups / mapSize));
    this.cellRows = Math.ceil(rows / this.rowsPerCell);
    this.cellCols = Math.ceil(groups / this.groupsPerCell);
    this.sum = new Float64Array(this.cellRows * this.cellCols);
    this.count = new Float64Array(this.cellRows * this.cellCols);
  }

  /** Add one row's per-group squared-error sums. */
  addRow(row: number, groupErr: Float64Array): void {
    const base = Math.floor(row / this.rowsPerCell) * this.cellCols;
    const g = this.groupSize;
    for (let j = 0; j < groupErr.length; j++) {
      const cell = base + Math.floor(j / this.groupsPerCell);
      this.sum[cell] += groupErr[j];
      this.count[cell] += Math.min(g, this.cols - j * g);
    }
  }

  result(): GroupMap {
    const mse = Array.from(this.sum, (s, i) => (this.count[i] > 0 ? round4(s / this.count[i]) : 0));
    return {
      groupSize: this.groupSize,
      rowsPerCell: this.rowsPerCell,
      groupsPerCell: this.groupsPerCell,
      cellRows: this.cellRows,
      cellCols: this.cellCols,
      mse,
    };
  }
}
