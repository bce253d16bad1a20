using System.Security.Cryptography;
using Akka.Actor;
using Orchestrator.Domain.Storage;
using static Orchestrator.Actors.Images.ImageStoreProtocol;

namespace Orchestrator.Actors.Images;

/// <summary>Why an image's file could not be fetched, in words for the VM's failure reason.</summary>
public sealed class ImageFetchException(string message) : Exception(message);

/// <summary>
/// One fetch of an image's file from a peer into this node's store: streamed into an owner-only partial file, hashed as
/// it comes, and renamed into place only when its SHA-256 and size are the ledger's. Anything else deletes the partial
/// file: a copy that is not exactly what was imported is never booted, and nothing of it stays.
/// </summary>
public static class ImageFetch
{
    /// <summary>How long a peer may take to say whether it holds the file.</summary>
    public static readonly TimeSpan LocateWait = TimeSpan.FromSeconds(10);

    /// <summary>How long one chunk may take to come: a peer that stops answering fails the fetch rather than hanging the VM's start.</summary>
    public static readonly TimeSpan ChunkWait = TimeSpan.FromSeconds(30);

    /// <returns>where the file came from (the peer's address).</returns>
    /// <exception cref="ImageFetchException">no peer holds it, one stopped answering, or the copy is not the ledger's.</exception>
    public static async Task<string> FetchAsync(ImageDisk image, string store, IReadOnlyList<ActorSelection> peers, TimeSpan chunkWait)
    {
        var source = await LocateAsync(image, peers);
        var where = source.Anchor.Path.Address.ToString();
        Directory.CreateDirectory(store, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute); // as an import makes it
        var partial = Path.Combine(store, $".fetch.{image.Id}.{Guid.NewGuid():N}.partial");
        try
        {
            string sha256;
            long total = 0;
            using (var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256))
            await using (var file = new FileStream(partial, new FileStreamOptions
            {
                Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
            }))
            {
                while (true)
                {
                    var data = await source.Ask<object>(new Read(image.Id, image.Format, total), chunkWait) switch
                    {
                        Chunk chunk when chunk.Offset == total => chunk.Data,
                        NotHeld => throw new ImageFetchException($"{where} stopped holding it after {total} bytes"),
                        var other => throw new ImageFetchException($"{where} answered {other.GetType().Name} at offset {total}"),
                    };
                    if (data.Length == 0)
                    {
                        break;
                    }

                    total += data.Length;
                    if (total > image.Bytes)
                    {
                        throw new ImageFetchException($"the copy on {where} is longer than the {image.Bytes} bytes recorded at import: refused");
                    }

                    hash.AppendData(data);
                    await file.WriteAsync(data);
                }

                sha256 = Convert.ToHexStringLower(hash.GetHashAndReset());
            }

            if (total != image.Bytes || !string.Equals(sha256, image.Sha256, StringComparison.Ordinal))
            {
                throw new ImageFetchException(
                    $"the copy fetched from {where} ({total} bytes, sha256 {sha256}) is not the one recorded at import ({image.Bytes} bytes, sha256 {image.Sha256}): refused");
            }

            File.Move(partial, Path.Combine(store, image.FileName));
            return where;
        }
        catch (AskTimeoutException)
        {
            throw new ImageFetchException($"{where} stopped answering within {chunkWait.TotalSeconds:F0} s");
        }
        finally
        {
            File.Delete(partial);
        }
    }

    /// <summary>Asks every peer at once; the first that holds the file is the source.</summary>
    private static async Task<ActorSelection> LocateAsync(ImageDisk image, IReadOnlyList<ActorSelection> peers)
    {
        if (peers.Count == 0)
        {
            throw new ImageFetchException("it is not in this node's store and no other node is up to fetch it from");
        }

        var asks = peers.ToDictionary(p => AskHolding(p, image), p => p);
        while (asks.Count > 0)
        {
            var answered = await Task.WhenAny(asks.Keys);
            if (await answered)
            {
                return asks[answered];
            }

            asks.Remove(answered);
        }

        throw new ImageFetchException($"it is not in this node's store, and none of the {peers.Count} other node(s) holds it");
    }

    private static async Task<bool> AskHolding(ActorSelection peer, ImageDisk image)
    {
        try
        {
            return await peer.Ask<object>(new Locate(image.Id, image.Format), LocateWait) is Holding;
        }
        catch (AskTimeoutException)
        {
            return false;
        }
    }
}
