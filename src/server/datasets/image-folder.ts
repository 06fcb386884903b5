/**
 * ImageFolder layout of a zip upload (`class/*.png|jpg|jpeg|webp`, optionally all under one top
 * folder), as torchvision's ImageFolder reads it: classes are the folder names, sorted.
 * macOS archive debris (`__MACOSX/`, `.DS_Store`, `._*`) is ignored; any other non-image file is an
 * error naming it.
 */
import * as path from 'node:path';
import { IMAGE_EXTENSIONS } from '../../prg/data';
import { DatasetError, listSome } from './dataset-errors';
import { ZipItem } from './safe-zip';

export interface ImageFolderFile {
  item: ZipItem;
  cls: string;
  /** File name inside its class folder. */
  base: string;
}

export interface ImageFolderPlan {
  classes: string[];
  files: ImageFolderFile[];
}

function ignored(name: string): boolean {
  const parts = name.replace(/\/$/, '').split('/');
  return (
    parts[0] === '__MACOSX' ||
    parts.some((p) => p === '.DS_Store' || p === 'Thumbs.db' || p.startsWith('._'))
  );
}

/** Classes and files of an ImageFolder zip, from its (already name-checked) entries. */
export function planImageFolder(items: ZipItem[]): ImageFolderPlan {
  const kept = items.filter((i) => !ignored(i.name));
  const files = kept.filter((i) => !i.isDirectory);
  const dirs = kept.filter((i) => i.isDirectory).map((i) => i.name.replace(/\/$/, '').split('/'));
  if (files.length === 0)
    throw new DatasetError(400, 'DATASET_LAYOUT', 'zip holds no files; expected class/image.png');
  const split = files.map((f) => f.name.split('/'));

  // One top folder around everything (`mnist/0/a.png`): strip it.
  const top = split[0][0];
  const strip =
    split.every((s) => s.length === 3 && s[0] === top) && dirs.every((d) => d[0] === top);
  const rel = split.map((s) => (strip ? s.slice(1) : s));
  const relDirs = dirs.map((d) => (strip ? d.slice(1) : d)).filter((d) => d.length > 0);

  const loose = files.filter((_, i) => rel[i].length === 1).map((f) => f.name);
  if (loose.length)
    throw new DatasetError(
      400,
      'DATASET_LAYOUT',
      `files outside class folders: ${listSome(loose)}; expected class/image.png (optionally under one top folder)`,
    );
  const deep = files.filter((_, i) => rel[i].length > 2).map((f) => f.name);
  const deepDirs = relDirs.filter((d) => d.length > 1).map((d) => d.join('/') + '/');
  if (deep.length || deepDirs.length)
    throw new DatasetError(
      400,
      'DATASET_LAYOUT',
      `nested folders: ${listSome([...deep, ...deepDirs])}; expected class/image.png (optionally under one top folder)`,
    );
  // The data layer's list, so every stored file is one the trainer's ImageFolder loader reads.
  const nonImages = files
    .filter((f) => !IMAGE_EXTENSIONS.includes(path.posix.extname(f.name).toLowerCase()))
    .map((f) => f.name);
  if (nonImages.length)
    throw new DatasetError(
      400,
      'DATASET_NON_IMAGE',
      `not image files (.png, .jpg, .jpeg, .webp): ${listSome(nonImages)}`,
    );

  const withFiles = new Set(rel.map((r) => r[0]));
  const empty = [...new Set(relDirs.map((d) => d[0]))].filter((c) => !withFiles.has(c)).sort();
  if (empty.length)
    throw new DatasetError(400, 'DATASET_EMPTY_CLASS', `empty class folders: ${listSome(empty)}`);
  const classes = [...withFiles].sort();
  if (classes.length < 2)
    throw new DatasetError(
      400,
      'DATASET_TOO_FEW_CLASSES',
      `found ${classes.length} class (${listSome(classes)}); a classifier needs at least 2 class folders`,
    );
  return {
    classes,
    files: files.map((item, i) => ({ item, cls: rel[i][0], base: rel[i][1] })),
  };
}
