export function listScenarios(dir?: string): string[];
export function scenarioCommand(name: string, args?: string[], dir?: string): { cmd: string; args: string[] } | null;
