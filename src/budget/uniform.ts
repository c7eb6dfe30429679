/**
 * Uniform budget planner: every lane gets the same cap. A token budget is the cap
 * itself; a byte budget is split evenly over the lanes and each lane's cap is the
 * largest token count whose worst-case page bytes fit its share.
 */
import { tokensForBytes, type LanePlan, type PlannerInput } from './types.ts';

/** `tokens` = budget.tokens per lane, or the most tokens that `budget.bytes / lanes` holds. */
export function uniformPlanner(input: PlannerInput): LanePlan[] {
  const lanes = input.layers * input.kvHeads;
  const tokens = 'tokens' in input.budget
    ? input.budget.tokens
    : tokensForBytes(Math.floor(input.budget.bytes / lanes), input.precision, input);
  return Array.from({ length: lanes }, () => ({ tokens, precision: input.precision }));
}
