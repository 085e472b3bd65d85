// Every OPFS write fails as when the quota is exhausted; reads still work.
FileSystemFileHandle.prototype.createWritable = async () => {
  throw new DOMException('the storage quota is exhausted', 'QuotaExceededError');
};
