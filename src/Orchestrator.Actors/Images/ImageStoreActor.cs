// A node's image store (issue 18, part 5): the imported images' files this node holds, served to peers that lack them, and
// fetched from a peer when a VM about to start here needs one this node lacks.
using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using Orchestrator.Domain.Storage;
using static Orchestrator.Actors.Images.ImageStoreProtocol;

namespace Orchestrator.Actors.Images;

/// <summary>
/// Runs on every node (an importing API node need not be a host). Serves <see cref="Locate"/> and <see cref="Read"/> from its
/// store directory; answers <see cref="Ensure"/> at once when the file is here, else starts one fetch per image
/// (<see cref="ImageFetch"/>) whose outcome answers every VM that asked meanwhile: a hundred VMs of one image starting
/// on one host fetch it once.
/// </summary>
/// <remarks>
/// The source is whichever peer answers first that it holds the file, not the node the import went through: the ledger
/// keeps no record of that (no snapshot change), any host that fetched a copy serves as well as the importer, and the
/// importer may be gone. Every copy is checked against the ledger's hash, so which peer answered does not matter.
/// </remarks>
public sealed class ImageStoreActor : ReceiveActor
{
    public const string Name = "image-store";

    /// <summary>One read's worth: 1 MiB is about 1.4 MB of JSON, well inside the 4 MiB remoting frame.</summary>
    public const int ChunkBytes = 1 << 20;

    private readonly string _store;
    private readonly ILoggingAdapter _log = Context.GetLogger();

    /// <summary>The VMs waiting on each file being fetched, by file name.</summary>
    private readonly Dictionary<string, List<IActorRef>> _fetching = new(StringComparer.Ordinal);

    public ImageStoreActor(string store)
    {
        _store = store;
        Receive<Ensure>(OnEnsure);
        Receive<Fetched>(OnFetched);
        Receive<Locate>(locate => Sender.Tell(PathOf(locate.ImageId, locate.Format) is { } path && new FileInfo(path) is { Exists: true } file
            ? new Holding(locate.ImageId, file.Length)
            : new NotHeld(locate.ImageId)));
        Receive<Read>(OnRead);
        Receive<Discard>(discard =>
        {
            if (PathOf(discard.ImageId, discard.Format) is { } path && File.Exists(path))
            {
                File.Delete(path);
                _log.Info("image {0}: deleted from the ledger, its copy here removed", discard.ImageId);
            }
        });
    }

    /// <summary>
    /// Tells every Up member's image store, this node's included, to delete its copy of an image the ledger no longer has:
    /// hosts that fetched it hold copies too. A member that is down keeps its copy, never booted without a record.
    /// </summary>
    public static void DiscardEverywhere(ActorSystem system, ImageDisk image)
    {
        var discard = new Discard(image.Id, image.Format);
        var members = system is ExtendedActorSystem { Provider: Akka.Cluster.ClusterActorRefProvider }
            ? Cluster.Get(system).State.Members.Where(m => m.Status == MemberStatus.Up).Select(m => m.Address).ToList()
            : [];
        foreach (var address in members)
        {
            system.ActorSelection(new RootActorPath(address) / "user" / Name).Tell(discard);
        }
    }

    public static Props Props(string store) => Akka.Actor.Props.Create(() => new ImageStoreActor(store));

    /// <summary>The file of that image in this store; null for an id or format a ledger could not have made (nothing to serve).</summary>
    private string? PathOf(string imageId, string format) =>
        ImageRecord.IsValidId(imageId) && ImageRecord.Formats.Contains(format, StringComparer.Ordinal)
            ? Path.Combine(_store, new ImageDisk(imageId, format, "").FileName)
            : null;

    private void OnEnsure(Ensure ensure)
    {
        var fileName = ensure.Image.FileName;
        var path = Path.Combine(_store, fileName);
        if (File.Exists(path))
        {
            Sender.Tell(new Ready(path));
            return;
        }

        if (_fetching.TryGetValue(fileName, out var waiting))
        {
            waiting.Add(Sender);
            return;
        }

        _fetching[fileName] = [Sender];
        var peers = Peers();
        _log.Info("image {0}: not in this node's store; asking {1} peer(s) for it", ensure.Image.Id, peers.Count);
        ImageFetch.FetchAsync(ensure.Image, _store, peers, ImageFetch.ChunkWait).PipeTo(Self,
            success: source => new Fetched(fileName, path, source, null),
            failure: ex => new Fetched(fileName, path, null, ex is ImageFetchException ? ex.Message : $"the fetch failed: {ex.Message}"));
    }

    private void OnFetched(Fetched fetched)
    {
        if (fetched.Failure is { } why)
        {
            _log.Warning("image file {0}: {1}", fetched.FileName, why);
        }
        else
        {
            _log.Info("image file {0}: fetched from {1}, sha256 checked", fetched.FileName, fetched.Source);
        }

        object answer = fetched.Failure is { } reason ? new Unavailable(reason) : new Ready(fetched.Path);
        foreach (var waiter in _fetching.Remove(fetched.FileName, out var waiting) ? waiting : [])
        {
            waiter.Tell(answer);
        }
    }

    private void OnRead(Read read)
    {
        var sender = Sender;
        if (PathOf(read.ImageId, read.Format) is not { } path || read.Offset < 0)
        {
            sender.Tell(new NotHeld(read.ImageId));
            return;
        }

        // A file read is I/O: off the dispatcher, its answer piped straight to the asker.
        ReadChunkAsync(path, read.Offset).PipeTo(sender, success: data => new Chunk(read.ImageId, read.Offset, data),
            failure: _ => new NotHeld(read.ImageId));
    }

    private static async Task<byte[]> ReadChunkAsync(string path, long offset)
    {
        await using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.Asynchronous);
        file.Position = Math.Min(offset, file.Length);
        var buffer = new byte[(int)Math.Min(ChunkBytes, file.Length - file.Position)];
        await file.ReadExactlyAsync(buffer);
        return buffer;
    }

    /// <summary>Every other Up member's image store.</summary>
    private List<ActorSelection> Peers()
    {
        if (Context.System is not ExtendedActorSystem { Provider: Akka.Cluster.ClusterActorRefProvider })
        {
            return [];
        }

        var cluster = Cluster.Get(Context.System);
        return cluster.State.Members
            .Where(m => m.Status == MemberStatus.Up && !m.Address.Equals(cluster.SelfAddress))
            .Select(m => Context.ActorSelection(new RootActorPath(m.Address) / "user" / Name))
            .ToList();
    }

    private sealed record Fetched(string FileName, string Path, string? Source, string? Failure);
}
