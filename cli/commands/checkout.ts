// `popkit checkout`: the checkout API alone (what the checkout container runs).
import { runCheckout } from '../../services/checkout/main.ts';

export async function run(_argv: string[]): Promise<number> {
  return runCheckout(process.env);
}
