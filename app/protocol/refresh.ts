// The `refresh` op's shape, for the request schema: {"op":"refresh","token":"<jwt>","id":n}.
// (`id` is validated like every op's.) Kept apart so it merges into the op union as one entry.
import { z } from 'zod';
import { MAX_TOKEN_CHARS } from '../auth/jwt-auth.js';

export const refreshToken = z.string().min(1).max(MAX_TOKEN_CHARS);

export const RefreshRequest = z.object({ op: z.literal('refresh'), token: refreshToken });
