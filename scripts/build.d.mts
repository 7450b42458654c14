export declare const entries: Record<string, string>;
export declare function bundle(opts?: { only?: string[]; outdir?: string }): Promise<string[]>;
