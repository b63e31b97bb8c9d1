// plotly.js-dist-min ships the full plotly.js bundle without typings; its API is @types/plotly.js.
declare module 'plotly.js-dist-min' {
  import * as Plotly from 'plotly.js';
  export default Plotly;
}
