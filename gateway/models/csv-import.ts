import { Schema, type InferSchemaType } from 'mongoose';

/**
 * A CSV file uploaded in the console, kept between preview and commit so
 * the (possibly large) file is sent once. Removed by the console after a
 * commit; stale ones are harmless and removed after a day.
 */
export const csvImportSchema = new Schema(
  {
    createdBy: { type: Schema.Types.ObjectId, required: true },
    filename: { type: String, default: '' },
    /** The file's text (NUL-free; at most MAX_IMPORT_BYTES, below the 16 MB document limit). */
    csv: { type: String, required: true },
    /** What the uploaded bytes were read as (see crm/csv-text.ts); the preview says so when it is not UTF-8. */
    encoding: { type: String, default: 'utf-8' },
    defaultType: { type: String, default: '' },
    /** An import under way is not a status: it is the upload's lease (crm/import-once.ts). */
    status: { type: String, enum: ['uploaded', 'committed'], default: 'uploaded' },
    /** Counts after commit: {total, creates, updates, invalid}. */
    result: { type: Schema.Types.Mixed, default: null },
    jobIds: { type: [Schema.Types.ObjectId], default: [] },
    createdAt: { type: Date, required: true },
    committedAt: { type: Date, default: null },
  },
  { collection: 'crm_csv_imports' },
);
csvImportSchema.index({ createdBy: 1, createdAt: -1 });
csvImportSchema.index({ createdAt: 1 });

export type CsvImportDoc = InferSchemaType<typeof csvImportSchema>;

