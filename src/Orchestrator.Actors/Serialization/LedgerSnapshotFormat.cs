using System.Buffers.Binary;
using System.IO.Hashing;
using System.Runtime.CompilerServices;
using Orchestrator.Actors.Scheduler;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Storage;
using Orchestrator.Domain.Networks;
using Orchestrator.Domain.Tenants;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Actors.Serialization;

/// <summary>
/// <see cref="LedgerSnapshot"/> in binary, stored under <see cref="Manifest"/>: a million VMs take 72 MiB where their
/// JSON took 430, and are read back several times faster. Layout: "LEDG", a version byte, the payload's length
/// (8 bytes), the records, then an XxHash3 of everything before it, so that a truncated or damaged row fails whole
/// rather than recovering half a ledger. Each record is written and read by a pair of methods side by side below, field
/// by field in the record's own order; a test holds the records' properties to the fields these methods cover.
/// </summary>
public static class LedgerSnapshotFormat
{
    /// <summary>The manifest a binary snapshot is stored under; JSON snapshots keep the type's plain manifest.</summary>
    public const string Manifest = "LedgerSnapshot.Binary";

    /// <summary>
    /// Changes whenever the layout does. This build writes it and reads it and the versions before it, so that a node
    /// upgraded in place recovers from the snapshot its old build took; a newer version is refused, never guessed at.
    /// Version 2 added <see cref="VmSpec.Driver"/>; version 3 <see cref="HostRecord.Accelerator"/> and <see cref="VmSpec.Accelerator"/>;
    /// version 4 <see cref="VmSpec.Bootstrap"/>; version 5 the storage section at the end (<see cref="WriteStorage"/>); version 6
    /// the placement section after it (<see cref="WritePlacement"/>); version 7 the networks and the VMs' NICs after that;
    /// version 8 the creates' idempotency keys (<see cref="WriteIdempotencyKeys"/>); version 9 the volumes and the tenants'
    /// storage quotas after them (<see cref="WriteVolumes"/>); version 10 the disk snapshots and the VMs' disk layers after
    /// those (<see cref="WriteSnapshots"/>); version 11 the security groups and the NICs' groups after
    /// those (<see cref="WriteSecurityGroups"/>); version 12 the tenants' volume, network and address quotas after
    /// those (<see cref="WriteCountQuotas"/>), then the port forwards and the tenants' forward ports (<see cref="WriteForwards"/>),
    /// then the VMs' disk I/O limits and shares (<see cref="WriteDiskLimits"/>); version 13 the imported images after those
    /// (<see cref="WriteImages"/>); version 14 the VMs' network limits and shares after those (<see cref="WriteNetLimits"/>);
    /// version 15 writes the VMs in chunks that are read side by side (<see cref="WriteVms"/>); version 16 the incremental
    /// snapshot's delta after the network limits (<see cref="WriteDelta"/>).
    /// </summary>
    public const byte Version = 16;

    private const byte OldestReadable = 1;

    private const int HeaderBytes = 4 + 1 + 8;
    private const int ChecksumBytes = 8;

    private static ReadOnlySpan<byte> Magic => "LEDG"u8;

    public static byte[] Write(LedgerSnapshot snapshot) => Write(snapshot, Version);

    /// <summary>
    /// The snapshot as <paramref name="version"/> wrote it (tests build older versions' payloads from it; the header names
    /// that version): below 15 the VMs as one list, below 16 no delta section.
    /// </summary>
    internal static byte[] Write(LedgerSnapshot snapshot, byte version)
    {
        using var stream = new MemoryStream();
        var w = new SnapshotWriter(stream);
        w.Bytes(Magic);
        w.Byte(version);
        w.Int64(0); // the length, filled in below
        List(w, snapshot.Hosts, WriteHost);
        if (version >= 15)
        {
            WriteVms(w, snapshot.Vms);
        }
        else
        {
            List(w, snapshot.Vms, WriteVm);
        }

        List(w, snapshot.Tenants, WriteTenant);
        List(w, snapshot.Keys, WriteKey);
        List(w, snapshot.Webhooks, WriteWebhook);
        List(w, snapshot.Rules, WriteRule);
        WriteStorage(w, snapshot);
        WritePlacement(w, snapshot);
        // Version 7, networks: the tenant networks, then the NICs of the VMs that have any (VM id, NICs), so that
        // VmSpec's own layout stays as version 4 wrote it.
        List(w, snapshot.Networks, WriteNetwork);
        var withNics = snapshot.Vms.Where(v => v.Spec.Nics is { Count: > 0 }).ToList();
        List(w, withNics.Count > 0 ? withNics : null, WriteVmNics);
        List(w, snapshot.IdempotencyKeys, WriteIdempotencyKeys);
        WriteVolumes(w, snapshot);
        WriteSnapshots(w, snapshot);
        WriteSecurityGroups(w, snapshot);
        WriteCountQuotas(w, snapshot);
        WriteForwards(w, snapshot);
        WriteDiskLimits(w, snapshot);
        WriteImages(w, snapshot);
        WriteNetLimits(w, snapshot);
        if (version >= 16)
        {
            WriteDelta(w, snapshot.Delta);
        }

        w.Flush();

        var written = checked((int)stream.Length);
        var buffer = stream.GetBuffer();
        BinaryPrimitives.WriteInt64LittleEndian(buffer.AsSpan(Magic.Length + 1), written + ChecksumBytes);
        w.Int64((long)XxHash3.HashToUInt64(buffer.AsSpan(0, written)));
        w.Flush();
        return stream.ToArray();
    }

    /// <exception cref="SerializationException">the payload is not a whole, undamaged snapshot of this version.</exception>
    public static LedgerSnapshot Read(byte[] bytes)
    {
        if (bytes.Length < HeaderBytes + ChecksumBytes)
        {
            throw new SerializationException(
                $"ledger snapshot is truncated: {bytes.Length} bytes, less than a header and a checksum ({HeaderBytes + ChecksumBytes})");
        }

        if (!bytes.AsSpan().StartsWith(Magic))
        {
            throw new SerializationException($"not a binary ledger snapshot: it does not start with '{System.Text.Encoding.ASCII.GetString(Magic)}'");
        }

        var version = bytes[Magic.Length];
        if (version is < OldestReadable or > Version)
        {
            throw new SerializationException(
                $"ledger snapshot of version {version}: this build reads versions {OldestReadable} to {Version}");
        }

        var length = BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(Magic.Length + 1));
        if (length != bytes.Length)
        {
            throw new SerializationException(length > bytes.Length
                ? $"ledger snapshot is truncated: {bytes.Length} of its {length} bytes are there"
                : $"ledger snapshot has {bytes.Length - length} bytes more than the {length} it was written with");
        }

        var body = bytes.AsSpan(0, bytes.Length - ChecksumBytes);
        var checksum = BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(body.Length));
        if (XxHash3.HashToUInt64(body) != checksum)
        {
            throw new SerializationException($"ledger snapshot is damaged: its {bytes.Length} bytes do not match their checksum");
        }

        var r = new SnapshotReader(bytes, HeaderBytes, body.Length, version);
        var hosts = List(r, "host", ReadHost);
        var vms = version >= 15 ? ReadVms(r) : List(r, "VM", ReadVm);
        var tenants = List(r, "tenant", ReadTenant);
        var keys = List(r, "API key", ReadKey);
        var webhooks = List(r, "webhook", ReadWebhook);
        var rules = List(r, "rule", ReadRule);
        if (version >= 5)
        {
            (hosts, vms) = ReadStorage(r, hosts!, vms!);
        }

        var groups = r.Version >= 6 ? ReadPlacement(r, hosts!, vms!) : null;

        // Version 7, networks (see Write).
        var networks = version >= 7 ? List(r, "network", ReadNetwork) : null;
        if (version >= 7 && List(r, "NICs", ReadVmNics) is { Length: > 0 } nics)
        {
            vms = WithNics(vms!, nics, r);
        }

        var idempotencyKeys = version >= 8 ? List(r, "idempotency key", ReadIdempotencyKey) : null;
        var volumes = version >= 9 ? ReadVolumes(r, tenants, vms!) : null;
        var snapshots = version >= 10 ? ReadSnapshots(r, tenants, vms!) : null;
        var securityGroups = version >= 11 ? ReadSecurityGroups(r, vms!) : null;
        if (version >= 12)
        {
            ReadCountQuotas(r, tenants);
        }

        var forwards = version >= 12 ? ReadForwards(r, tenants) : null;
        if (version >= 12)
        {
            ReadDiskLimits(r, vms!);
        }

        var images = version >= 13 ? ReadImages(r) : null;

        if (version >= 14)
        {
            ReadNetLimits(r, vms!);
        }

        var delta = version >= 16 ? ReadDelta(r) : null;

        r.Section = "end";
        r.Index = -1;
        if (!r.AtEnd)
        {
            throw r.Corrupt($"{r.Remaining} bytes after the last record");
        }

        return new LedgerSnapshot(hosts!, vms!, tenants, keys, webhooks, rules, groups, networks, idempotencyKeys, volumes, snapshots, securityGroups,
            forwards, images, delta);
    }

    /// <summary>
    /// The properties each record's methods below write and read, by type. A test compares them with the records'
    /// own: a property added to a record fails it until it is written here too, instead of vanishing at the next snapshot.
    /// </summary>
    public static readonly IReadOnlyDictionary<Type, string[]> Covered = new Dictionary<Type, string[]>
    {
        [typeof(LedgerSnapshot)] =
        [
            nameof(LedgerSnapshot.Hosts), nameof(LedgerSnapshot.Vms), nameof(LedgerSnapshot.Tenants), nameof(LedgerSnapshot.Keys),
            nameof(LedgerSnapshot.Webhooks), nameof(LedgerSnapshot.Rules), nameof(LedgerSnapshot.Groups), nameof(LedgerSnapshot.Networks),
            nameof(LedgerSnapshot.IdempotencyKeys), nameof(LedgerSnapshot.Volumes), nameof(LedgerSnapshot.Snapshots), nameof(LedgerSnapshot.SecurityGroups),
            nameof(LedgerSnapshot.Forwards), nameof(LedgerSnapshot.Images), nameof(LedgerSnapshot.Delta),
        ],
        [typeof(SnapshotDelta)] =
        [
            nameof(SnapshotDelta.PreviousSequenceNr), nameof(SnapshotDelta.RemovedHosts), nameof(SnapshotDelta.RemovedVms),
        ],
        [typeof(ImageRecord)] =
        [
            nameof(ImageRecord.Id), nameof(ImageRecord.Tenant), nameof(ImageRecord.Name), nameof(ImageRecord.Public), nameof(ImageRecord.Format),
            nameof(ImageRecord.Sha256), nameof(ImageRecord.Bytes), nameof(ImageRecord.VirtualBytes), nameof(ImageRecord.Boot),
            nameof(ImageRecord.CreatedAt),
        ],
        [typeof(PortForwardRecord)] =
        [
            nameof(PortForwardRecord.Id), nameof(PortForwardRecord.Tenant), nameof(PortForwardRecord.NetworkId), nameof(PortForwardRecord.Vm),
            nameof(PortForwardRecord.Nic), nameof(PortForwardRecord.Protocol), nameof(PortForwardRecord.HostPort), nameof(PortForwardRecord.GuestPort),
            nameof(PortForwardRecord.CreatedAt),
        ],
        [typeof(SecurityGroupRecord)] =
        [
            nameof(SecurityGroupRecord.Id), nameof(SecurityGroupRecord.Tenant), nameof(SecurityGroupRecord.Name), nameof(SecurityGroupRecord.Rules),
            nameof(SecurityGroupRecord.CreatedAt),
        ],
        [typeof(SecurityRule)] =
        [
            nameof(SecurityRule.Id), nameof(SecurityRule.Protocol), nameof(SecurityRule.PortFrom), nameof(SecurityRule.PortTo),
            nameof(SecurityRule.RemoteCidr), nameof(SecurityRule.RemoteGroup),
        ],
        [typeof(IdempotencyRecord)] = [nameof(IdempotencyRecord.Token), nameof(IdempotencyRecord.VmId), nameof(IdempotencyRecord.At)],
        [typeof(IdempotencyToken)] = [nameof(IdempotencyToken.Key), nameof(IdempotencyToken.BodyHash)],
        [typeof(Domain.Placement.GroupRecord)] =
        [
            nameof(Domain.Placement.GroupRecord.Tenant), nameof(Domain.Placement.GroupRecord.Name), nameof(Domain.Placement.GroupRecord.Policy),
            nameof(Domain.Placement.GroupRecord.CreatedAt),
        ],
        [typeof(NetworkRecord)] =
        [
            nameof(NetworkRecord.Id), nameof(NetworkRecord.Tenant), nameof(NetworkRecord.Name), nameof(NetworkRecord.Cidr),
            nameof(NetworkRecord.Gateway), nameof(NetworkRecord.Vni), nameof(NetworkRecord.CreatedAt),
        ],
        [typeof(VmNic)] = [nameof(VmNic.Network), nameof(VmNic.Ip), nameof(VmNic.Mac), nameof(VmNic.SecurityGroups)],
        [typeof(VolumeRecord)] =
        [
            nameof(VolumeRecord.Id), nameof(VolumeRecord.Tenant), nameof(VolumeRecord.Name), nameof(VolumeRecord.SizeGiB),
            nameof(VolumeRecord.Pool), nameof(VolumeRecord.Host), nameof(VolumeRecord.AttachedTo), nameof(VolumeRecord.CreatedAt),
        ],
        [typeof(HostRecord)] =
        [
            nameof(HostRecord.Id), nameof(HostRecord.Cpus), nameof(HostRecord.MemoryMiB), nameof(HostRecord.Driver), nameof(HostRecord.State),
            nameof(HostRecord.AllocatedVcpus), nameof(HostRecord.AllocatedMemoryMiB), nameof(HostRecord.VmCount), nameof(HostRecord.Address),
            nameof(HostRecord.ReservedCpuMillicores), nameof(HostRecord.ReservedMemoryMiB), nameof(HostRecord.Accelerator),
            nameof(HostRecord.Pools),
            nameof(HostRecord.Labels),
        ],
        [typeof(HostAccelerator)] = [nameof(HostAccelerator.Kind), nameof(HostAccelerator.CpuModel), nameof(HostAccelerator.Note)],
        [typeof(VmRecord)] =
        [
            nameof(VmRecord.Id), nameof(VmRecord.Tenant), nameof(VmRecord.Spec), nameof(VmRecord.Desired), nameof(VmRecord.Status),
            nameof(VmRecord.Reason), nameof(VmRecord.Host), nameof(VmRecord.Epoch), nameof(VmRecord.Pid), nameof(VmRecord.Restarts),
            nameof(VmRecord.CreatedAt), nameof(VmRecord.ReadyAt), nameof(VmRecord.EntitledCpuMillicores), nameof(VmRecord.Disk),
        ],
        [typeof(VmSpec)] =
        [
            nameof(VmSpec.Name), nameof(VmSpec.Vcpus), nameof(VmSpec.MemoryMiB), nameof(VmSpec.Image), nameof(VmSpec.RestartPolicy),
            nameof(VmSpec.Resources), nameof(VmSpec.Labels), nameof(VmSpec.Driver), nameof(VmSpec.Accelerator),
            nameof(VmSpec.Bootstrap), nameof(VmSpec.DiskGiB), nameof(VmSpec.HostSelector), nameof(VmSpec.Group), nameof(VmSpec.Nics),
            nameof(VmSpec.Volumes), nameof(VmSpec.FromSnapshot),
        ],
        [typeof(StoragePoolInfo)] =
        [
            nameof(StoragePoolInfo.Id), nameof(StoragePoolInfo.Kind), nameof(StoragePoolInfo.CapacityGiB), nameof(StoragePoolInfo.Overcommit),
            nameof(StoragePoolInfo.Shared),
        ],
        [typeof(VmDisk)] = [nameof(VmDisk.Pool), nameof(VmDisk.Host), nameof(VmDisk.Layer), nameof(VmDisk.Backing)],
        [typeof(SnapshotRecord)] =
        [
            nameof(SnapshotRecord.Id), nameof(SnapshotRecord.Tenant), nameof(SnapshotRecord.Name), nameof(SnapshotRecord.Vm),
            nameof(SnapshotRecord.Layer), nameof(SnapshotRecord.Backing), nameof(SnapshotRecord.Pool), nameof(SnapshotRecord.Host),
            nameof(SnapshotRecord.SizeGiB), nameof(SnapshotRecord.Image), nameof(SnapshotRecord.Ready), nameof(SnapshotRecord.CreatedAt),
        ],
        [typeof(VmBootstrap)] = [nameof(VmBootstrap.Hostname), nameof(VmBootstrap.SshKeys), nameof(VmBootstrap.UserData)],
        [typeof(VmResources)] =
        [
            nameof(VmResources.CpuShares), nameof(VmResources.CpuReservationMillicores), nameof(VmResources.CpuLimitMillicores),
            nameof(VmResources.MemoryReservationMiB), nameof(VmResources.MemoryLimitMiB), nameof(VmResources.Cpuset),
            nameof(VmResources.DiskIops), nameof(VmResources.DiskBps), nameof(VmResources.DiskShares),
            nameof(VmResources.NetBps), nameof(VmResources.NetShares),
        ],
        [typeof(TenantRecord)] =
        [
            nameof(TenantRecord.Id), nameof(TenantRecord.Quota), nameof(TenantRecord.Disabled), nameof(TenantRecord.CreatedAt),
            nameof(TenantRecord.Pool),
        ],
        [typeof(TenantQuota)] =
            [nameof(TenantQuota.MaxVms), nameof(TenantQuota.MaxVcpus), nameof(TenantQuota.MaxMemoryMiB), nameof(TenantQuota.MaxStorageGiB),
                nameof(TenantQuota.MaxSnapshots), nameof(TenantQuota.MaxVolumes), nameof(TenantQuota.MaxNetworks), nameof(TenantQuota.MaxAddresses),
                nameof(TenantQuota.ForwardPorts)],
        [typeof(TenantCpuPool)] = [nameof(TenantCpuPool.Shares), nameof(TenantCpuPool.ReservationMillicores), nameof(TenantCpuPool.LimitMillicores)],
        [typeof(ApiKeyRecord)] =
        [
            nameof(ApiKeyRecord.KeyId), nameof(ApiKeyRecord.Tenant), nameof(ApiKeyRecord.Role), nameof(ApiKeyRecord.SecretHash),
            nameof(ApiKeyRecord.Name), nameof(ApiKeyRecord.CreatedAt), nameof(ApiKeyRecord.RevokedAt),
        ],
        [typeof(WebhookRecord)] =
        [
            nameof(WebhookRecord.Id), nameof(WebhookRecord.Tenant), nameof(WebhookRecord.Url), nameof(WebhookRecord.Secret),
            nameof(WebhookRecord.EventTypes), nameof(WebhookRecord.CreatedAt),
        ],
        [typeof(RuleRecord)] =
        [
            nameof(RuleRecord.Id), nameof(RuleRecord.Tenant), nameof(RuleRecord.Name), nameof(RuleRecord.OnEvent), nameof(RuleRecord.Count),
            nameof(RuleRecord.Within), nameof(RuleRecord.Schedule), nameof(RuleRecord.Selector), nameof(RuleRecord.Action),
            nameof(RuleRecord.CreatedAt),
        ],
        [typeof(VmId)] = [nameof(VmId.Value)],
        [typeof(TenantId)] = [nameof(TenantId.Value)],
        [typeof(HostId)] = [nameof(HostId.Value)],
        [typeof(Epoch)] = [nameof(Epoch.Value)],
    };

    private static void WriteHost(SnapshotWriter w, HostRecord h)
    {
        w.Shared(h.Id.Value);
        w.Int32(h.Cpus);
        w.Int64(h.MemoryMiB);
        w.Shared(h.Driver);
        w.Enum(h.State);
        w.Int32(h.AllocatedVcpus);
        w.Int64(h.AllocatedMemoryMiB);
        w.Int32(h.VmCount);
        w.Shared(h.Address);
        w.Int64(h.ReservedCpuMillicores);
        w.Int64(h.ReservedMemoryMiB);
        Optional(w, h.Accelerator, (w, a) =>
        {
            w.Shared(a.Kind);
            w.Shared(a.CpuModel);
            w.Text(a.Note);
        });
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // see ReadVm
    private static HostRecord ReadHost(SnapshotReader r) => new(
        new HostId(r.Shared()!),
        r.Int32(),
        r.Int64(),
        r.Shared()!,
        r.Enum<HostState>(),
        r.Int32(),
        r.Int64(),
        r.Int32(),
        r.Shared()!,
        r.Int64(),
        r.Int64(),
        r.Version >= 3 && r.Bool() ? new HostAccelerator(r.Shared()!, r.Shared()!, r.Text()!) : null);

    // ---- Version 15: the VMs in chunks. Each chunk is written by a writer of its own, which knows the shared strings
    // written before the VMs (the hosts') and keeps those it adds to itself, and follows its byte length: a reader finds
    // every chunk first and then decodes them on all cores. At a million VMs this was the longest single step of a
    // recovery's read. Written the same way, side by side.
    private const int VmsPerChunk = 32_768;

    /// <summary>
    /// Room for a VM's record in its chunk's stream, made at once (<see cref="SnapshotWriter.Reserve"/>): a VM took 82
    /// bytes in a million-VM snapshot; one with NICs, labels or disks takes more, and its chunk's stream then grows.
    /// </summary>
    private const int VmBytesReserved = 112;

    /// <summary>Room for what follows the VMs (tenants, keys, networks …), made with theirs: a small ledger's own.</summary>
    private const int AfterVmsBytesReserved = 64 * 1024;

    private static void WriteVms(SnapshotWriter w, IReadOnlyList<VmRecord> vms)
    {
        var chunks = new MemoryStream[(vms.Count + VmsPerChunk - 1) / VmsPerChunk];
        Parallel.For(0, chunks.Length, c =>
        {
            var end = Math.Min(vms.Count, (c + 1) * VmsPerChunk);
            var stream = new MemoryStream((end - c * VmsPerChunk) * VmBytesReserved);
            var chunk = w.Fork(stream);
            for (var i = c * VmsPerChunk; i < end; i++)
            {
                WriteVm(chunk, vms[i]);
            }

            chunk.Flush();
            chunks[c] = stream;
        });
        // Written straight from each chunk's buffer into a stream with room for them all: at 695,000 VMs a snapshot's
        // write allocated 475 MiB for its 57 MB, each chunk copied out of its stream and the whole grown by doubling.
        w.Reserve(chunks.Sum(c => c.Length + sizeof(int)) + AfterVmsBytesReserved);
        w.Count(vms.Count);
        foreach (var chunk in chunks)
        {
            w.Int32((int)chunk.Length);
            w.Bytes(chunk.GetBuffer().AsSpan(0, (int)chunk.Length));
        }
    }

    private static VmRecord[] ReadVms(SnapshotReader r)
    {
        r.Section = "VM";
        r.Index = -1;
        var count = r.Count() ?? throw r.Corrupt("the VMs are null");
        var chunks = new List<(int Start, int End)>((count + VmsPerChunk - 1) / VmsPerChunk);
        var truncated = false;
        while (chunks.Count * VmsPerChunk < count && !truncated)
        {
            r.Index = chunks.Count * VmsPerChunk;
            var length = r.Int32();
            if (length < 0)
            {
                throw r.Corrupt($"a chunk of {length} bytes");
            }

            // A chunk cut short is still read, as far as it goes: its reader then names the VM where it ends.
            truncated = length > r.Remaining;
            chunks.Add((r.Position, r.Position + Math.Min(length, r.Remaining)));
            r.Skip(chunks[^1].End - chunks[^1].Start);
        }

        var vms = new VmRecord[count];
        try
        {
            Parallel.For(0, chunks.Count, c =>
            {
                var chunk = r.Slice(chunks[c].Start, chunks[c].End);
                chunk.Section = "VM";
                for (var i = c * VmsPerChunk; i < Math.Min(count, (c + 1) * VmsPerChunk); i++)
                {
                    chunk.Index = i;
                    vms[i] = ReadVm(chunk);
                }

                if (!chunk.AtEnd)
                {
                    throw chunk.Corrupt($"{chunk.Remaining} bytes after the chunk's last VM");
                }
            });
        }
        catch (AggregateException e) when (e.InnerExceptions.FirstOrDefault(x => x is SerializationException) is { } corrupt)
        {
            throw corrupt; // the chunk's own message, which says where
        }

        if (truncated)
        {
            throw r.Corrupt($"truncated: the VMs' last chunk ends {r.Remaining} bytes early");
        }

        r.Index = -1;
        return vms;
    }

    private static void WriteVm(SnapshotWriter w, VmRecord v)
    {
        w.Guid(v.Id.Value);
        w.Shared(v.Tenant.Value);
        WriteSpec(w, v.Spec);
        w.Enum(v.Desired);
        w.Enum(v.Status);
        w.Shared(v.Reason);
        Optional(w, v.Host, (w, host) => w.Shared(host.Value));
        w.Int64(v.Epoch.Value);
        Optional(w, v.Pid, (w, pid) => w.Int32(pid));
        w.Int32(v.Restarts);
        w.Time(v.CreatedAt);
        Optional(w, v.ReadyAt, (w, at) => w.Time(at));
        Optional(w, v.EntitledCpuMillicores, (w, m) => w.Int64(m));
    }

    // Optimised at its first call, not at tier 0 first: a cold recovery calls it a million times while the compiler is at
    // its busiest, which delays promotions, and only optimised code inlines the reader's small reads into it.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static VmRecord ReadVm(SnapshotReader r) => new(
        new VmId(r.Guid()),
        new TenantId(r.Shared()!),
        ReadSpec(r),
        r.Enum<DesiredState>(),
        r.Enum<VmStatus>(),
        r.Shared(),
        r.Bool() ? new HostId(r.Shared()!) : null,
        new Epoch(r.Int64()),
        r.Bool() ? r.Int32() : null,
        r.Int32(),
        r.Time(),
        r.Bool() ? r.Time() : null,
        r.Bool() ? r.Int64() : null);

    private static void WriteSpec(SnapshotWriter w, VmSpec s)
    {
        w.Text(s.Name);
        w.Int32(s.Vcpus);
        w.Int32(s.MemoryMiB);
        w.Shared(s.Image);
        w.Enum(s.RestartPolicy);
        Optional(w, s.Resources, WriteResources);
        Dictionary(w, s.Labels);
        w.Shared(s.Driver);
        w.Shared(s.Accelerator);
        Optional(w, s.Bootstrap, WriteBootstrap);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // as ReadVm above
    private static VmSpec ReadSpec(SnapshotReader r) => new(
        r.Text()!,
        r.Int32(),
        r.Int32(),
        r.Shared()!,
        r.Enum<RestartPolicy>(),
        r.Bool() ? ReadResources(r) : null,
        Dictionary(r),
        r.Version >= 2 ? r.Shared() : null,
        r.Version >= 3 ? r.Shared() : null,
        r.Version >= 4 && r.Bool() ? ReadBootstrap(r) : null);

    private static void WriteBootstrap(SnapshotWriter w, VmBootstrap b)
    {
        w.Text(b.Hostname);
        w.Count(b.SshKeys?.Count);
        foreach (var key in b.SshKeys ?? [])
        {
            w.Text(key);
        }

        w.Blob(b.UserData);
    }

    private static VmBootstrap ReadBootstrap(SnapshotReader r)
    {
        var hostname = r.Text();
        var keys = r.Count() is { } count ? Enumerable.Range(0, count).Select(_ => r.Text() ?? throw r.Corrupt("an SSH key is null")).ToArray() : null;
        return new VmBootstrap(hostname, keys, r.Blob());
    }

    private static void WriteResources(SnapshotWriter w, VmResources x)
    {
        Optional(w, x.CpuShares, (w, shares) => w.Int32(shares));
        w.Int32(x.CpuReservationMillicores);
        Optional(w, x.CpuLimitMillicores, (w, limit) => w.Int32(limit));
        w.Int32(x.MemoryReservationMiB);
        Optional(w, x.MemoryLimitMiB, (w, limit) => w.Int32(limit));
        w.Shared(x.Cpuset);
    }

    private static VmResources ReadResources(SnapshotReader r) => new(
        r.Bool() ? r.Int32() : null,
        r.Int32(),
        r.Bool() ? r.Int32() : null,
        r.Int32(),
        r.Bool() ? r.Int32() : null,
        r.Shared());

    private static void WriteTenant(SnapshotWriter w, TenantRecord t)
    {
        w.Shared(t.Id.Value);
        Optional(w, t.Quota.MaxVms, (w, n) => w.Int32(n));
        Optional(w, t.Quota.MaxVcpus, (w, n) => w.Int32(n));
        Optional(w, t.Quota.MaxMemoryMiB, (w, n) => w.Int64(n));
        w.Bool(t.Disabled);
        w.Time(t.CreatedAt);
        Optional(w, t.Pool, (w, pool) =>
        {
            Optional(w, pool.Shares, (w, shares) => w.Int32(shares));
            w.Int32(pool.ReservationMillicores);
            Optional(w, pool.LimitMillicores, (w, limit) => w.Int32(limit));
        });
    }

    private static TenantRecord ReadTenant(SnapshotReader r) => new(
        new TenantId(r.Shared()!),
        new TenantQuota(r.Bool() ? r.Int32() : null, r.Bool() ? r.Int32() : null, r.Bool() ? r.Int64() : null),
        r.Bool(),
        r.Time(),
        r.Bool() ? new TenantCpuPool(r.Bool() ? r.Int32() : null, r.Int32(), r.Bool() ? r.Int32() : null) : null);

    private static void WriteKey(SnapshotWriter w, ApiKeyRecord k)
    {
        w.Text(k.KeyId);
        w.Shared(k.Tenant.Value);
        w.Enum(k.Role);
        w.Text(k.SecretHash);
        w.Text(k.Name);
        w.Time(k.CreatedAt);
        Optional(w, k.RevokedAt, (w, at) => w.Time(at));
    }

    private static ApiKeyRecord ReadKey(SnapshotReader r) => new(
        r.Text()!,
        new TenantId(r.Shared()!),
        r.Enum<KeyRole>(),
        r.Text()!,
        r.Text(),
        r.Time(),
        r.Bool() ? r.Time() : null);

    private static void WriteWebhook(SnapshotWriter w, WebhookRecord h)
    {
        w.Text(h.Id);
        w.Shared(h.Tenant.Value);
        w.Text(h.Url);
        w.Text(h.Secret);
        List(w, h.EventTypes, (w, type) => w.Shared(type));
        w.Time(h.CreatedAt);
    }

    private static WebhookRecord ReadWebhook(SnapshotReader r) => new(
        r.Text()!,
        new TenantId(r.Shared()!),
        r.Text()!,
        r.Text()!,
        List(r, "webhook event type", r => r.Shared()!)!,
        r.Time());

    private static void WriteRule(SnapshotWriter w, RuleRecord x)
    {
        w.Text(x.Id);
        w.Shared(x.Tenant.Value);
        w.Text(x.Name);
        w.Shared(x.OnEvent);
        w.Int32(x.Count);
        w.Int64(x.Within.Ticks);
        w.Shared(x.Schedule);
        Dictionary(w, x.Selector);
        w.Enum(x.Action);
        w.Time(x.CreatedAt);
    }

    private static RuleRecord ReadRule(SnapshotReader r) => new(
        r.Text()!,
        new TenantId(r.Shared()!),
        r.Text()!,
        r.Shared(),
        r.Int32(),
        new TimeSpan(r.Int64()),
        r.Shared(),
        Dictionary(r)!,
        r.Enum<RuleAction>(),
        r.Time());

    // ---- Storage (version 5): after the rules, behind its own marker, so that other sections' additions stay apart. ----
    // The hosts' pools in the hosts' order, then each VM's disk size and disk in the VMs' order.
    private const int StorageMarker = 0x524F5453; // "STOR"

    private static void WriteStorage(SnapshotWriter w, LedgerSnapshot snapshot)
    {
        w.Int32(StorageMarker);
        foreach (var host in snapshot.Hosts)
        {
            List(w, host.Pools, (w, pool) =>
            {
                w.Shared(pool.Id);
                w.Shared(pool.Kind);
                w.Int64(pool.CapacityGiB);
                w.Int64(BitConverter.DoubleToInt64Bits(pool.Overcommit));
                w.Bool(pool.Shared);
            });
        }

        foreach (var vm in snapshot.Vms)
        {
            Optional(w, vm.Spec.DiskGiB, (w, size) => w.Int32(size));
            Optional(w, vm.Disk, (w, disk) =>
            {
                w.Shared(disk.Pool);
                Optional(w, disk.Host, (w, host) => w.Shared(host.Value));
            });
        }
    }

    private static (HostRecord[] Hosts, VmRecord[] Vms) ReadStorage(SnapshotReader r, HostRecord[] hosts, VmRecord[] vms)
    {
        r.Section = "storage";
        r.Index = -1;
        if (r.Int32() != StorageMarker)
        {
            throw r.Corrupt("the storage section's marker is missing");
        }

        for (var i = 0; i < hosts.Length; i++)
        {
            r.Index = i;
            hosts[i] = hosts[i] with
            {
                Pools = List(r, "storage pool", r => new StoragePoolInfo(
                    r.Shared()!, r.Shared()!, r.Int64(), BitConverter.Int64BitsToDouble(r.Int64()), r.Bool())),
            };
        }

        for (var i = 0; i < vms.Length; i++)
        {
            r.Index = i;
            var diskGiB = r.Bool() ? r.Int32() : (int?)null;
            var disk = r.Bool() ? new VmDisk(r.Shared()!, r.Bool() ? new HostId(r.Shared()!) : null) : null;
            // Most VMs have neither (ReadVm left both null): copying a million records to set null again was a third
            // of the snapshot's read.
            if (diskGiB is not null || disk is not null)
            {
                vms[i] = vms[i] with { Spec = vms[i].Spec with { DiskGiB = diskGiB }, Disk = disk };
            }
        }

        return (hosts, vms);
    }

    // ---- Version 6: steerable placement. A section of its own after the storage section, so that the records above keep their
    // layout: each host's labels and each VM's host selector and group, in the order of the host and VM lists, then
    // the server groups.

    private static void WritePlacement(SnapshotWriter w, LedgerSnapshot snapshot)
    {
        List(w, snapshot.Hosts, (w, h) => Dictionary(w, h.Labels));
        List(w, snapshot.Vms, (w, v) =>
        {
            List(w, v.Spec.HostSelector, (w, term) => w.Shared(term));
            w.Shared(v.Spec.Group);
        });
        List(w, snapshot.Groups, (w, g) =>
        {
            w.Shared(g.Tenant.Value);
            w.Text(g.Name);
            w.Enum(g.Policy);
            w.Time(g.CreatedAt);
        });
    }

    /// <summary>Puts the placement section's labels, selectors and groups on the records read before it; returns the groups.</summary>
    private static Domain.Placement.GroupRecord[]? ReadPlacement(SnapshotReader r, HostRecord[] hosts, VmRecord[] vms)
    {
        var labels = List(r, "host labels", Dictionary);
        if (labels?.Length != hosts.Length)
        {
            throw r.Corrupt($"labels for {labels?.Length ?? 0} hosts, not the {hosts.Length} hosts");
        }

        var placement = List(r, "VM placement", r => (Selector: List(r, "host selector", r => r.Shared()!), Group: r.Shared()));
        if (placement?.Length != vms.Length)
        {
            throw r.Corrupt($"placement for {placement?.Length ?? 0} VMs, not the {vms.Length} VMs");
        }

        for (var i = 0; i < hosts.Length; i++)
        {
            hosts[i] = hosts[i] with { Labels = labels[i] };
        }

        for (var i = 0; i < vms.Length; i++)
        {
            if (placement[i] is not (null, null))
            {
                vms[i] = vms[i] with { Spec = vms[i].Spec with { HostSelector = placement[i].Selector, Group = placement[i].Group } };
            }
        }

        return List(r, "server group", r => new Domain.Placement.GroupRecord(new TenantId(r.Shared()!), r.Text()!,
            r.Enum<Domain.Placement.GroupPolicy>(), r.Time()));
    }

    // ---- Version 7: tenant networks and the VMs' NICs, after the placement section.

    private static void WriteNetwork(SnapshotWriter w, NetworkRecord n)
    {
        w.Text(n.Id);
        w.Shared(n.Tenant.Value);
        w.Text(n.Name);
        w.Shared(n.Cidr);
        w.Bool(n.Gateway);
        w.Int32(n.Vni);
        w.Time(n.CreatedAt);
    }

    private static NetworkRecord ReadNetwork(SnapshotReader r) => new(
        r.Text()!,
        new TenantId(r.Shared()!),
        r.Text()!,
        r.Shared()!,
        r.Bool(),
        r.Int32(),
        r.Time());

    private static void WriteVmNics(SnapshotWriter w, VmRecord vm)
    {
        w.Guid(vm.Id.Value);
        List(w, vm.Spec.Nics, (w, nic) =>
        {
            w.Shared(nic.Network);
            w.Text(nic.Ip);
            w.Text(nic.Mac);
        });
    }

    private static (VmId VmId, VmNic[] Nics) ReadVmNics(SnapshotReader r) =>
        (new VmId(r.Guid()), List(r, "NIC", r => new VmNic(r.Shared()!, r.Text(), r.Text())) ?? []);

    private static VmRecord[] WithNics(VmRecord[] vms, (VmId VmId, VmNic[] Nics)[] nics, SnapshotReader r)
    {
        var byVm = new Dictionary<VmId, VmNic[]>(nics.Length);
        foreach (var (vm, cards) in nics)
        {
            if (!byVm.TryAdd(vm, cards))
            {
                throw r.Corrupt($"the NICs of VM {vm} twice");
            }
        }

        for (var i = 0; i < vms.Length; i++)
        {
            if (byVm.Remove(vms[i].Id, out var cards))
            {
                vms[i] = vms[i] with { Spec = vms[i].Spec with { Nics = cards } };
            }
        }

        return byVm.Count == 0 ? vms : throw r.Corrupt($"NICs of {byVm.Count} VM(s) the snapshot does not hold");
    }

    // ---- Version 8: the creates' idempotency keys of the last day (digests, the VM each made, when).

    private static void WriteIdempotencyKeys(SnapshotWriter w, IdempotencyRecord record)
    {
        w.Text(record.Token.Key);
        w.Text(record.Token.BodyHash);
        w.Guid(record.VmId.Value);
        w.Time(record.At);
    }

    private static IdempotencyRecord ReadIdempotencyKey(SnapshotReader r) =>
        new(new IdempotencyToken(r.Text()!, r.Text()!), new VmId(r.Guid()), r.Time());

    // ---- Version 9: volumes, after the idempotency keys, behind its own marker; then the storage quota of each tenant that
    // has one (tenant id, GiB), so that the tenants' own layout stays as version 1 wrote it; then the volume names of VMs
    // whose spec has any (the ledger keeps none there: attachments live on the volumes; written for what a snapshot holds).
    private const int VolumesMarker = 0x554C4F56; // "VOLU"

    private static void WriteVolumes(SnapshotWriter w, LedgerSnapshot snapshot)
    {
        w.Int32(VolumesMarker);
        List(w, snapshot.Volumes, (w, v) =>
        {
            w.Text(v.Id);
            w.Shared(v.Tenant.Value);
            w.Text(v.Name);
            w.Int32(v.SizeGiB);
            w.Shared(v.Pool);
            Optional(w, v.Host, (w, host) => w.Shared(host.Value));
            Optional(w, v.AttachedTo, (w, vm) => w.Guid(vm.Value));
            w.Time(v.CreatedAt);
        });
        var quotas = (snapshot.Tenants ?? []).Where(t => t.Quota.MaxStorageGiB is not null).ToList();
        List(w, quotas.Count > 0 ? quotas : null, (w, t) =>
        {
            w.Shared(t.Id.Value);
            w.Int64(t.Quota.MaxStorageGiB!.Value);
        });
        var naming = snapshot.Vms.Where(v => v.Spec.Volumes is not null).ToList();
        List(w, naming.Count > 0 ? naming : null, (w, vm) =>
        {
            w.Guid(vm.Id.Value);
            List(w, vm.Spec.Volumes, (w, name) => w.Text(name));
        });
    }

    private static VolumeRecord[]? ReadVolumes(SnapshotReader r, TenantRecord[]? tenants, VmRecord[] vms)
    {
        r.Section = "volumes";
        r.Index = -1;
        if (r.Int32() != VolumesMarker)
        {
            throw r.Corrupt("the volumes section's marker is missing");
        }

        var volumes = List(r, "volume", r => new VolumeRecord(r.Text()!, new TenantId(r.Shared()!), r.Text()!, r.Int32(), r.Shared()!,
            r.Bool() ? new HostId(r.Shared()!) : null, r.Bool() ? new VmId(r.Guid()) : null, r.Time()));
        foreach (var (tenant, maxGiB) in List(r, "storage quota", r => (new TenantId(r.Shared()!), r.Int64())) ?? [])
        {
            WithQuota(r, tenants, tenant, "storage", q => q with { MaxStorageGiB = maxGiB });
        }

        var named = (List(r, "VM volumes", r => (VmId: new VmId(r.Guid()), Names: List(r, "volume name", r => r.Text()!) ?? [])) ?? [])
            .ToDictionary(n => n.VmId, n => n.Names);
        for (var i = 0; i < vms.Length && named.Count > 0; i++)
        {
            if (named.Remove(vms[i].Id, out var names))
            {
                vms[i] = vms[i] with { Spec = vms[i].Spec with { Volumes = names } };
            }
        }

        return named.Count == 0 ? volumes : throw r.Corrupt($"volume names of {named.Count} VM(s) the snapshot does not hold");
    }

    // ---- Version 10: disk snapshots, after the volumes, behind its own marker; then the disk layers of VMs that changed
    // theirs (VM id, layer, backing), the snapshot quota of each tenant that has one, and the snapshot each clone came from,
    // so that the VMs' and tenants' own layouts stay as earlier versions wrote them.
    private const int SnapshotsMarker = 0x50414E53; // "SNAP"

    private static void WriteSnapshots(SnapshotWriter w, LedgerSnapshot snapshot)
    {
        w.Int32(SnapshotsMarker);
        List(w, snapshot.Snapshots, (w, s) =>
        {
            w.Text(s.Id);
            w.Shared(s.Tenant.Value);
            w.Text(s.Name);
            w.Guid(s.Vm.Value);
            w.Text(s.Layer);
            Optional(w, s.Backing, (w, b) => w.Text(b));
            w.Shared(s.Pool);
            Optional(w, s.Host, (w, host) => w.Shared(host.Value));
            w.Int32(s.SizeGiB);
            w.Shared(s.Image);
            w.Bool(s.Ready);
            w.Time(s.CreatedAt);
        });
        var layered = snapshot.Vms.Where(v => v.Disk is { Layer: not null } or { Backing: not null }).ToList();
        List(w, layered.Count > 0 ? layered : null, (w, vm) =>
        {
            w.Guid(vm.Id.Value);
            Optional(w, vm.Disk!.Layer, (w, l) => w.Text(l));
            Optional(w, vm.Disk.Backing, (w, b) => w.Text(b));
        });
        var quotas = (snapshot.Tenants ?? []).Where(t => t.Quota.MaxSnapshots is not null).ToList();
        List(w, quotas.Count > 0 ? quotas : null, (w, t) =>
        {
            w.Shared(t.Id.Value);
            w.Int32(t.Quota.MaxSnapshots!.Value);
        });
        var clones = snapshot.Vms.Where(v => v.Spec.FromSnapshot is not null).ToList();
        List(w, clones.Count > 0 ? clones : null, (w, vm) =>
        {
            w.Guid(vm.Id.Value);
            w.Text(vm.Spec.FromSnapshot);
        });
    }

    private static SnapshotRecord[]? ReadSnapshots(SnapshotReader r, TenantRecord[]? tenants, VmRecord[] vms)
    {
        r.Section = "snapshots";
        r.Index = -1;
        if (r.Int32() != SnapshotsMarker)
        {
            throw r.Corrupt("the snapshots section's marker is missing");
        }

        var snapshots = List(r, "snapshot", r => new SnapshotRecord(r.Text()!, new TenantId(r.Shared()!), r.Text()!, new VmId(r.Guid()), r.Text()!,
            r.Bool() ? r.Text() : null, r.Shared()!, r.Bool() ? new HostId(r.Shared()!) : null, r.Int32(), r.Shared()!, r.Bool(), r.Time()));
        var byId = vms.Select((vm, i) => (vm.Id, i)).ToDictionary(p => p.Id, p => p.i);
        foreach (var (vmId, layer, backing) in List(r, "disk layer", r => (new VmId(r.Guid()), r.Bool() ? r.Text() : null, r.Bool() ? r.Text() : null)) ?? [])
        {
            if (!byId.TryGetValue(vmId, out var i) || vms[i].Disk is null)
            {
                throw r.Corrupt($"disk layers of VM {vmId}, which the snapshot does not hold with a disk");
            }

            vms[i] = vms[i] with { Disk = vms[i].Disk! with { Layer = layer, Backing = backing } };
        }

        foreach (var (tenant, max) in List(r, "snapshot quota", r => (new TenantId(r.Shared()!), r.Int32())) ?? [])
        {
            WithQuota(r, tenants, tenant, "snapshot", q => q with { MaxSnapshots = max });
        }

        foreach (var (vmId, from) in List(r, "clone source", r => (new VmId(r.Guid()), r.Text()!)) ?? [])
        {
            if (!byId.TryGetValue(vmId, out var i))
            {
                throw r.Corrupt($"the clone source of VM {vmId}, which the snapshot does not hold");
            }

            vms[i] = vms[i] with { Spec = vms[i].Spec with { FromSnapshot = from } };
        }

        return snapshots;
    }

    /// <summary>Sets a part of a tenant's quota that a later section holds, in the tenants read before it.</summary>
    private static void WithQuota(SnapshotReader r, TenantRecord[]? tenants, TenantId tenant, string what, Func<TenantQuota, TenantQuota> change)
    {
        var index = Array.FindIndex(tenants ?? [], t => t.Id == tenant);
        if (index < 0)
        {
            throw r.Corrupt($"a {what} quota for tenant '{tenant}' the snapshot does not hold");
        }

        tenants![index] = tenants[index] with { Quota = change(tenants[index].Quota) };
    }

    // ---- Version 11: security groups, after the volumes, behind their own marker; then the groups of the VMs' NICs that
    // have any (VM id, then NIC index and group names), so that the NICs' own layout stays as version 7 wrote it.
    private const int SecurityGroupsMarker = 0x47434553; // "SECG"

    private static void WriteSecurityGroups(SnapshotWriter w, LedgerSnapshot snapshot)
    {
        w.Int32(SecurityGroupsMarker);
        List(w, snapshot.SecurityGroups, (w, g) =>
        {
            w.Text(g.Id);
            w.Shared(g.Tenant.Value);
            w.Text(g.Name);
            w.Time(g.CreatedAt);
            List(w, g.Rules, (w, rule) =>
            {
                w.Text(rule.Id);
                w.Shared(rule.Protocol);
                w.Int32(rule.PortFrom);
                w.Int32(rule.PortTo);
                Optional(w, rule.RemoteCidr, (w, cidr) => w.Text(cidr));
                Optional(w, rule.RemoteGroup, (w, group) => w.Text(group));
            });
        });
        var secured = snapshot.Vms.Where(v => (v.Spec.Nics ?? []).Any(n => n.SecurityGroups is { Count: > 0 })).ToList();
        List(w, secured.Count > 0 ? secured : null, (w, vm) =>
        {
            w.Guid(vm.Id.Value);
            var nics = vm.Spec.Nics!.Select((nic, index) => (nic, index)).Where(n => n.nic.SecurityGroups is { Count: > 0 }).ToList();
            List(w, nics, (w, n) =>
            {
                w.Int32(n.index);
                List(w, n.nic.SecurityGroups, (w, name) => w.Text(name));
            });
        });
    }

    private static SecurityGroupRecord[]? ReadSecurityGroups(SnapshotReader r, VmRecord[] vms)
    {
        r.Section = "security groups";
        r.Index = -1;
        if (r.Int32() != SecurityGroupsMarker)
        {
            throw r.Corrupt("the security groups section's marker is missing");
        }

        var groups = List(r, "security group", r => new SecurityGroupRecord(r.Text()!, new TenantId(r.Shared()!), r.Text()!,
            [], r.Time()) is var g
            ? g with
            {
                Rules = [.. List(r, "security rule", r => new SecurityRule(r.Text()!, r.Shared()!, r.Int32(), r.Int32(),
                    r.Bool() ? r.Text() : null, r.Bool() ? r.Text() : null)) ?? []],
            }
            : g);
        var secured = (List(r, "VM NIC groups", r => (VmId: new VmId(r.Guid()),
                Nics: List(r, "NIC groups", r => (Index: r.Int32(), Names: List(r, "group name", r => r.Text()!) ?? [])) ?? [])) ?? [])
            .ToDictionary(s => s.VmId, s => s.Nics);
        for (var i = 0; i < vms.Length && secured.Count > 0; i++)
        {
            if (secured.Remove(vms[i].Id, out var nics))
            {
                var cards = (vms[i].Spec.Nics ?? []).ToArray();
                foreach (var (index, names) in nics)
                {
                    if (index < 0 || index >= cards.Length)
                    {
                        throw r.Corrupt($"security groups for NIC {index} of VM {vms[i].Id}, which has {cards.Length}");
                    }

                    cards[index] = cards[index] with { SecurityGroups = names };
                }

                vms[i] = vms[i] with { Spec = vms[i].Spec with { Nics = cards } };
            }
        }

        return secured.Count > 0 ? throw r.Corrupt($"security groups for {secured.Count} VM(s) the snapshot does not hold") : groups;
    }

    // ---- Version 12: the volume, network and address quotas of each tenant that has any, after the security groups, behind
    // their own marker, so that the tenants' own layout stays as version 1 wrote it.
    private const int CountQuotasMarker = 0x544F5551; // "QUOT"

    private static void WriteCountQuotas(SnapshotWriter w, LedgerSnapshot snapshot)
    {
        w.Int32(CountQuotasMarker);
        var quotas = (snapshot.Tenants ?? []).Where(t => t.Quota is { MaxVolumes: not null } or { MaxNetworks: not null } or { MaxAddresses: not null })
            .ToList();
        List(w, quotas.Count > 0 ? quotas : null, (w, t) =>
        {
            w.Shared(t.Id.Value);
            Optional(w, t.Quota.MaxVolumes, (w, max) => w.Int32(max));
            Optional(w, t.Quota.MaxNetworks, (w, max) => w.Int32(max));
            Optional(w, t.Quota.MaxAddresses, (w, max) => w.Int32(max));
        });
    }

    private static void ReadCountQuotas(SnapshotReader r, TenantRecord[]? tenants)
    {
        r.Section = "count quotas";
        r.Index = -1;
        if (r.Int32() != CountQuotasMarker)
        {
            throw r.Corrupt("the count quotas section's marker is missing");
        }

        foreach (var (tenant, volumes, networks, addresses) in List(r, "count quota",
                     r => (new TenantId(r.Shared()!), r.Bool() ? r.Int32() : (int?)null, r.Bool() ? r.Int32() : (int?)null, r.Bool() ? r.Int32() : (int?)null))
                 ?? [])
        {
            WithQuota(r, tenants, tenant, "count", q => q with { MaxVolumes = volumes, MaxNetworks = networks, MaxAddresses = addresses });
        }
    }

    // ---- Version 12, after the count quotas: port forwards, behind their own marker; then the forward ports granted to
    // each tenant that has some, so that the tenants' own layout stays as version 1 wrote it.
    private const int ForwardsMarker = 0x53445746; // "FWDS"

    private static void WriteForwards(SnapshotWriter w, LedgerSnapshot snapshot)
    {
        w.Int32(ForwardsMarker);
        List(w, snapshot.Forwards is { Count: > 0 } forwards ? forwards : null, (w, f) =>
        {
            w.Text(f.Id);
            w.Shared(f.Tenant.Value);
            w.Text(f.NetworkId);
            w.Guid(f.Vm.Value);
            w.Int32(f.Nic);
            w.Shared(f.Protocol);
            w.Int32(f.HostPort);
            w.Int32(f.GuestPort);
            w.Time(f.CreatedAt);
        });
        var granted = (snapshot.Tenants ?? []).Where(t => t.Quota.ForwardPorts is not null).ToList();
        List(w, granted.Count > 0 ? granted : null, (w, t) =>
        {
            w.Shared(t.Id.Value);
            w.Text(t.Quota.ForwardPorts);
        });
    }

    private static PortForwardRecord[]? ReadForwards(SnapshotReader r, TenantRecord[]? tenants)
    {
        r.Section = "forwards";
        r.Index = -1;
        if (r.Int32() != ForwardsMarker)
        {
            throw r.Corrupt("the forwards section's marker is missing");
        }

        var forwards = List(r, "forward", r => new PortForwardRecord(r.Text()!, new TenantId(r.Shared()!), r.Text()!, new VmId(r.Guid()), r.Int32(),
            r.Shared()!, r.Int32(), r.Int32(), r.Time()));
        foreach (var (tenant, ports) in List(r, "forward ports", r => (new TenantId(r.Shared()!), r.Text()!)) ?? [])
        {
            WithQuota(r, tenants, tenant, "forward ports", q => q with { ForwardPorts = ports });
        }

        return forwards;
    }

    // ---- Version 12, after the forwards: the VMs' disk I/O limits and share weights, behind their own marker: the VMs
    // that set any (VM id, then IOPS, bytes per second and shares, each optional), so that VmResources' own layout stays
    // as version 1 wrote it.
    private const int DiskLimitsMarker = 0x4C4F4944; // "DIOL"

    private static void WriteDiskLimits(SnapshotWriter w, LedgerSnapshot snapshot)
    {
        w.Int32(DiskLimitsMarker);
        var limited = snapshot.Vms
            .Where(v => v.Spec.Resources is { } x && (x.DiskIops is not null || x.DiskBps is not null || x.DiskShares is not null))
            .ToList();
        List(w, limited.Count > 0 ? limited : null, (w, vm) =>
        {
            var x = vm.Spec.Resources!;
            w.Guid(vm.Id.Value);
            Optional(w, x.DiskIops, (w, iops) => w.Int64(iops));
            Optional(w, x.DiskBps, (w, bps) => w.Int64(bps));
            Optional(w, x.DiskShares, (w, shares) => w.Int32(shares));
        });
    }

    private static void ReadDiskLimits(SnapshotReader r, VmRecord[] vms)
    {
        r.Section = "disk limits";
        r.Index = -1;
        if (r.Int32() != DiskLimitsMarker)
        {
            throw r.Corrupt("the disk limits section's marker is missing");
        }

        var limits = (List(r, "VM disk limits", r => (VmId: new VmId(r.Guid()), Iops: r.Bool() ? r.Int64() : (long?)null,
                Bps: r.Bool() ? r.Int64() : (long?)null, Shares: r.Bool() ? r.Int32() : (int?)null)) ?? [])
            .ToDictionary(l => l.VmId);
        for (var i = 0; i < vms.Length && limits.Count > 0; i++)
        {
            if (limits.Remove(vms[i].Id, out var l))
            {
                var resources = (vms[i].Spec.Resources ?? VmResources.Default) with { DiskIops = l.Iops, DiskBps = l.Bps, DiskShares = l.Shares };
                vms[i] = vms[i] with { Spec = vms[i].Spec with { Resources = resources } };
            }
        }

        if (limits.Count > 0)
        {
            throw r.Corrupt($"disk limits for {limits.Count} VM(s) the snapshot does not hold");
        }
    }

    // ---- Version 13: imported images, after the disk limits, behind their own marker.
    private const int ImagesMarker = 0x53474D49; // "IMGS"

    private static void WriteImages(SnapshotWriter w, LedgerSnapshot snapshot)
    {
        w.Int32(ImagesMarker);
        List(w, snapshot.Images is { Count: > 0 } images ? images : null, (w, i) =>
        {
            w.Text(i.Id);
            w.Shared(i.Tenant.Value);
            w.Text(i.Name);
            w.Bool(i.Public);
            w.Shared(i.Format);
            w.Text(i.Sha256);
            w.Int64(i.Bytes);
            w.Int64(i.VirtualBytes);
            w.Shared(i.Boot);
            w.Time(i.CreatedAt);
        });
    }

    private static ImageRecord[]? ReadImages(SnapshotReader r)
    {
        r.Section = "images";
        r.Index = -1;
        if (r.Int32() != ImagesMarker)
        {
            throw r.Corrupt("the images section's marker is missing");
        }

        return List(r, "image", r => new ImageRecord(r.Text()!, new TenantId(r.Shared()!), r.Text()!, r.Bool(), r.Shared()!, r.Text()!, r.Int64(),
            r.Int64(), r.Shared()!, r.Time()));
    }

    // ---- Version 14, after the images: the VMs' network limits and share weights, behind their own marker: the VMs
    // that set any (VM id, then bytes per second and shares, each optional).
    private const int NetLimitsMarker = 0x4C54454E; // "NETL"

    private static void WriteNetLimits(SnapshotWriter w, LedgerSnapshot snapshot)
    {
        w.Int32(NetLimitsMarker);
        var limited = snapshot.Vms.Where(v => v.Spec.Resources is { } x && (x.NetBps is not null || x.NetShares is not null)).ToList();
        List(w, limited.Count > 0 ? limited : null, (w, vm) =>
        {
            var x = vm.Spec.Resources!;
            w.Guid(vm.Id.Value);
            Optional(w, x.NetBps, (w, bps) => w.Int64(bps));
            Optional(w, x.NetShares, (w, shares) => w.Int32(shares));
        });
    }

    // ---- Version 16, after the network limits: whether the snapshot is incremental, and if so the snapshot it builds on,
    // the hosts and VMs removed since (see SnapshotDelta).
    private const int DeltaMarker = 0x544C4544; // "DELT"

    private static void WriteDelta(SnapshotWriter w, SnapshotDelta? delta)
    {
        w.Int32(DeltaMarker);
        Optional(w, delta, (w, d) =>
        {
            w.Int64(d.PreviousSequenceNr);
            List(w, d.RemovedHosts, (w, id) => w.Shared(id.Value));
            List(w, d.RemovedVms, (w, id) => w.Guid(id.Value));
        });
    }

    private static SnapshotDelta? ReadDelta(SnapshotReader r)
    {
        r.Section = "delta";
        r.Index = -1;
        if (r.Int32() != DeltaMarker)
        {
            throw r.Corrupt("the delta section's marker is missing");
        }

        if (!r.Bool())
        {
            return null;
        }

        var previous = r.Int64();
        var removedHosts = List(r, "removed host", r => new HostId(r.Shared()!)) ?? [];
        var removedVms = List(r, "removed VM", r => new VmId(r.Guid())) ?? [];
        if (previous < 0)
        {
            throw r.Corrupt($"the delta builds on snapshot {previous}");
        }

        return new SnapshotDelta(previous, removedHosts, removedVms);
    }

    private static void ReadNetLimits(SnapshotReader r, VmRecord[] vms)
    {
        r.Section = "network limits";
        r.Index = -1;
        if (r.Int32() != NetLimitsMarker)
        {
            throw r.Corrupt("the network limits section's marker is missing");
        }

        var limits = (List(r, "VM network limits", r => (VmId: new VmId(r.Guid()), Bps: r.Bool() ? r.Int64() : (long?)null,
                Shares: r.Bool() ? r.Int32() : (int?)null)) ?? [])
            .ToDictionary(l => l.VmId);
        for (var i = 0; i < vms.Length && limits.Count > 0; i++)
        {
            if (limits.Remove(vms[i].Id, out var l))
            {
                var resources = (vms[i].Spec.Resources ?? VmResources.Default) with { NetBps = l.Bps, NetShares = l.Shares };
                vms[i] = vms[i] with { Spec = vms[i].Spec with { Resources = resources } };
            }
        }

        if (limits.Count > 0)
        {
            throw r.Corrupt($"network limits for {limits.Count} VM(s) the snapshot does not hold");
        }
    }

    private static void Optional<T>(SnapshotWriter w, T? value, Action<SnapshotWriter, T> write) where T : struct
    {
        w.Bool(value.HasValue);
        if (value is { } present)
        {
            write(w, present);
        }
    }

    private static void Optional<T>(SnapshotWriter w, T? value, Action<SnapshotWriter, T> write) where T : class
    {
        w.Bool(value is not null);
        if (value is not null)
        {
            write(w, value);
        }
    }

    private static void List<T>(SnapshotWriter w, IReadOnlyList<T>? items, Action<SnapshotWriter, T> write)
    {
        w.Count(items?.Count);
        foreach (var item in items ?? [])
        {
            write(w, item);
        }
    }

    private static T[]? List<T>(SnapshotReader r, string section, Func<SnapshotReader, T> read)
    {
        var (outerSection, outerIndex) = (r.Section, r.Index);
        r.Section = section;
        r.Index = -1;
        var items = r.Count() is { } count ? new T[count] : null;
        for (var i = 0; i < items?.Length; i++)
        {
            r.Index = i;
            items[i] = read(r);
        }

        (r.Section, r.Index) = (outerSection, outerIndex);
        return items;
    }

    // Labels and selectors: written in their enumeration order, read back in it (Dictionary keeps insertion order).
    private static void Dictionary(SnapshotWriter w, IReadOnlyDictionary<string, string>? pairs)
    {
        w.Count(pairs?.Count);
        foreach (var (key, value) in pairs ?? VmLabels.None)
        {
            w.Shared(key);
            w.Shared(value);
        }
    }

    private static Dictionary<string, string>? Dictionary(SnapshotReader r)
    {
        if (r.Count() is not { } count)
        {
            return null;
        }

        var pairs = new Dictionary<string, string>(count, StringComparer.Ordinal);
        for (var i = 0; i < count; i++)
        {
            var key = r.Shared() ?? throw r.Corrupt("a label without a key");
            if (!pairs.TryAdd(key, r.Shared()!))
            {
                throw r.Corrupt($"label '{key}' twice");
            }
        }

        return pairs;
    }
}
