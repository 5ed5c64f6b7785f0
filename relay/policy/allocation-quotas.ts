/**
 * The allocation quotas (--user-quota, --max-allocations-per-ip, --total-quota) as one rule: given
 * what is held now, whether one more allocation fits, and if not, which quota it meets. The Allocate
 * handler applies it to its own table; the primary of a relay with worker processes (issue 17) will
 * apply it to the holds of all workers together, so both count the same way.
 */
export interface AllocationQuotas {
  /** Allocations one user may hold; 0: no limit. */
  userQuota: number;
  /** Allocations one client source (an IPv4 address, an IPv6 /64) may hold; 0: no limit. */
  maxAllocationsPerIp: number;
  /** Allocations the relay holds in all; 0: no limit. */
  totalQuota: number;
}

/** What is held now by the user, by the client's source, and in all. */
export interface HeldAllocations {
  user: number;
  source: number;
  total: number;
}

export type QuotaRefusal = "user-quota" | "ip-quota" | "total-quota";

/** The quota one more allocation would exceed, checked in this order, or null when it fits. */
export function quotaRefusal(quotas: AllocationQuotas, held: HeldAllocations): QuotaRefusal | null {
  if (quotas.userQuota > 0 && held.user >= quotas.userQuota) return "user-quota";
  if (quotas.maxAllocationsPerIp > 0 && held.source >= quotas.maxAllocationsPerIp) return "ip-quota";
  if (quotas.totalQuota > 0 && held.total >= quotas.totalQuota) return "total-quota";
  return null;
}
