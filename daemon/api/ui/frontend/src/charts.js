// The parts of Chart.js the dashboard draws with (daemon/api/ui/static/dashboard.js).
import {
  Chart, BarController, BarElement, LineController, LineElement, PointElement,
  DoughnutController, ArcElement, CategoryScale, LinearScale, Legend, Tooltip, Filler,
} from "chart.js";

Chart.register(BarController, BarElement, LineController, LineElement, PointElement,
  DoughnutController, ArcElement, CategoryScale, LinearScale, Legend, Tooltip, Filler);

export { Chart };
