// Seconds each nested test file took inside one L1 on this kind of machine (2 cores, TCG), so the runner can
// balance its L1 batches. Only ratios matter; a file missing here counts as 30 s.
export const l1Costs: Record<string, number> = {};
