export async function runCpuinfo(): Promise<number> { return 1; }
